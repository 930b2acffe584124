"""The shared training and inference kernel every torch-based mode runs on.

Import it inside functions: it pulls in torch.
"""
