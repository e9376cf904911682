"""Related experiments that train their own networks beside the study: the compact MNIST model, feature-map
training, the architecture search and test-time augmentation. They import the engine only.
"""
