"""Pure, Ray-free document predicates and scorers. Nothing here imports the engine or stages."""
