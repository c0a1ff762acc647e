"""generation_svc: turns retrieved passages into a streamed, cited answer."""
