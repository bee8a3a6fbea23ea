"""Community organizations as Loopgate partners: policy, webhook, e-mail, API keys."""
