"""Execution: a ``Program`` goes in, an ``Outcome`` comes out.

The sandbox (``sandbox``, ``cgroups``, ``native``), uid leases (``uids``), the proof of completion
(``proof``), verdict rules (``verdict``) and the per-language recipes with the toolchain facts they
own (``runners``). It imports nothing of problems, prompts or samples (the HumanEval-X pipeline
above builds the programs), so other callers can run code through it too.
"""
