"""VPG-C's synthetic training data, made by the built-in kit: edits of the built-in world's
scenes (``data``), of photos (``photos``, the edits themselves in ``edits``), in-context
episodes with an edited twin (``episodes``), and the one place that picks among them and
hands the samples to the adapter's trainer (``sources``: ``VPGCDataConfig``,
``train_on_synthetic``). Submodules are imported where used (no eager imports here)."""
