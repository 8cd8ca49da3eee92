"""Publishing: corpus shards, training-config views, dataset card, manifest and fingerprint, Hub push/pull, diff."""
