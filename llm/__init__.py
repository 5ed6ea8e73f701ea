"""The trading language model: corpus, tokenizer, base model, LoRA adapter and chatbot."""
