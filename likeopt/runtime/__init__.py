"""What every service process runs on: settings, the input contract, gRPC, telemetry, logs and text.

Nothing here imports from ``likeopt.caching`` or ``likeopt.ops``, so a service image needs neither.
"""
