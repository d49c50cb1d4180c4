"""DRUM's retriever training: ranked candidate lists from LVLM feedback, the trainable dual
encoder, the list-wise fine-tuning loop (``trainer``) and iterative demonstration mining
(``mining``)."""
