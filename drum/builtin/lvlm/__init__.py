"""The built-in LVLM: a tiny ``LlavaForConditionalGeneration`` trained here to learn in context."""
