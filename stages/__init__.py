"""Composable stages. Each module holds one stage, registered with `pipeline.registry.register`."""
