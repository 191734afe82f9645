"""After a call: its summary and the agent's ``collect_fields``, then the ``call.ended`` event.

* :mod:`.fields` — the JSON schema the language model must answer in, and the check of its
  answer (pure);
* :mod:`.offline` — the deterministic fallback: an extractive summary and rule-based field
  extraction, when no language model is configured or it failed (pure);
* :mod:`.llm` — which OpenAI-compatible model summarises an agent's calls, and the request;
* :mod:`.runner` — the worker: claims post-call jobs from the journal, runs the step, stores
  ``summary`` / ``collected`` on the call and stages ``call.ended`` in one transaction.
"""
