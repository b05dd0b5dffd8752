"""Parameter sweeps, gathering of multiruns and global sensitivity."""
