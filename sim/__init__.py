"""placesim: simulate where AI inference runs and what each placement costs."""
