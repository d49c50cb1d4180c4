"""The built-in vision-language world: seeded scenes of coloured shapes and three task types.

See ``docs/world.md`` for the design and why demonstrations matter in it.
"""

from drum.builtin.world.language import Convention, sample_convention
from drum.builtin.world.scene import Scene, render_scene, sample_scene

__all__ = ["Convention", "Scene", "render_scene", "sample_convention", "sample_scene"]
