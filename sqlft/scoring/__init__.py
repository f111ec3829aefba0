"""Execution scoring shared by `sqlft eval`, GRPO's reward and the server: run gold and predicted SQL on an
example's databases, compare, and choose an answer (extract -> repair -> vote)."""
