"""The tokenizers geex models speak, each behind ``geex.models.protocols.Tokenizer``: ``codegeex``
(CodeGeeX's GPT-J BPE with its whitespace tokens, ids equal to the original's) and ``hf`` (a
``tokenizer.json`` or a GGUF file's embedded byte-level BPE, with EOS ids and chat templates)."""
