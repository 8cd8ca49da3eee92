"""mathforge.builders: recipe -> sources -> stages (sample, synthesize, collect, decontaminate, mix, publish) -> corpus."""
