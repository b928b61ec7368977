"""PixelCNN++ with the Outlier Exposure margin ranking loss on log-likelihoods (see README.md in this folder)."""
