"""Engine adapters. Each module imports its engine (llama_cpp, torch, vllm) only when used."""
