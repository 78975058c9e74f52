"""Classical machine-learning baselines in NumPy over oxinet's GEMM.

Linear regression (normal equations / gradient descent, with the Gaussian MLE view),
binary logistic regression and its softmax (multiclass) form, a multiclass linear SVM (hinge loss), k-nearest neighbours
(L1/L2), k-fold cross-validation and random hyperparameter search on log scales.
Inputs use the row layout: X is (n_examples, n_features). The estimators accept any real
numeric dtype and compute in float64 (small dense solves and long gradient-descent runs);
kNN distances keep float32 inputs in float32.
"""

from oxinet.classic.knn import KNearestNeighbors, pairwise_distances
from oxinet.classic.linear import LinearRegression, mse_loss_and_grad, normal_equation
from oxinet.classic.logistic import (LogisticRegression, SoftmaxRegression, logistic_loss_and_grad, sigmoid,
                                    softmax, softmax_loss_and_grad)
from oxinet.classic.model_selection import (
    Choice,
    IntUniform,
    LogUniform,
    OneMinusLogUniform,
    SearchResult,
    Uniform,
    accuracy,
    cross_val_score,
    k_fold_indices,
    neg_mean_squared_error,
    random_search,
    sample_log_uniform,
    sample_one_minus_log_uniform,
)
from oxinet.classic.svm import LinearSVM, svm_loss

__all__ = [
    "KNearestNeighbors", "pairwise_distances",
    "LinearRegression", "mse_loss_and_grad", "normal_equation",
    "LogisticRegression", "logistic_loss_and_grad", "sigmoid",
    "SoftmaxRegression", "softmax", "softmax_loss_and_grad",
    "LinearSVM", "svm_loss",
    "Choice", "IntUniform", "LogUniform", "OneMinusLogUniform", "SearchResult", "Uniform",
    "accuracy", "cross_val_score", "k_fold_indices", "neg_mean_squared_error", "random_search",
    "sample_log_uniform", "sample_one_minus_log_uniform",
]
