"""Like-Opt's common package: settings, telemetry, server bootstrap, generated stubs and the CLI."""
