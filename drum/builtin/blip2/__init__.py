"""The built-in BLIP-2: a tiny ``Blip2ForConditionalGeneration`` whose Q-Former drops a detail.

VPG-C completes what a caption-trained visual prompt generator leaves out. This kit makes a
base with exactly that gap, small enough to train on two CPU cores:

* ``scenes``: 64 px images with one big central object and one small corner object;
* ``questions``: the question forms about them (primary, held-out near and far, and the
  two-image forms VPG-C's synthetic data uses), with their paraphrases;
* ``model``: the architecture (BLIP vision tower, Q-Former with few queries, a Llama LM over
  a word vocabulary) and its processor files, loaded by ``HFLVLM`` like any BLIP-2;
* ``train``: the three stages (vision tower on per-patch labels; stage A, everything about
  both objects; stage B, new queries on big-object tasks, which recreates the bottleneck) and
  the gates that check it;
* ``data``: the held-out evaluation tasks and VPG-C's synthetic edited pairs, as DEMON tasks;
* ``assets``: the shipped copy and its manifest.
"""
