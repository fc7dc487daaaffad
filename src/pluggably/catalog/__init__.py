"""The model catalog one caller sees: registry models and provider models together."""
