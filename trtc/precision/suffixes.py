"""Which files in a data folder are samples. Kept free of numpy: the up-to-date check reads it."""

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm"}
SAMPLE_SUFFIXES = {".npy", ".npz", *IMAGE_SUFFIXES}
