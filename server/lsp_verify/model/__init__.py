"""The model: where the GGUF comes from, the llama.cpp engine, prompt formats."""
