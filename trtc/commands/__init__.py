"""The commands' cores: what `trtc build`, `check`, `init`, `inspect` and `run` do, without the CLI."""
