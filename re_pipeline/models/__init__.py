"""Models: backbone (load or build), tokenizer training, entity embedding, pooling, heads, losses, PEFT."""
