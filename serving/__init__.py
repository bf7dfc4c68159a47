"""Serving, the layer below retrieval, finetune and tagging: one `Generator` protocol with declared capabilities
(`protocol`), one module per backend (`local`: transformers + peft in this process, with its request batcher in
`batching`; `remote`: an OpenAI-compatible server through the openai SDK), the `AdapterRouter` that keeps the
promoted adapters served (`router`), and the vLLM supervisor (`vllm`)."""
