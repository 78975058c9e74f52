"""Linear Kalman filter, and the constant-velocity box filter used by SORT.

Generic filter (state x (n,), covariance P (n, n))::

    predict:  x = F x,            P = F P F^T + Q
    update:   y = z - H x,        S = H P H^T + R,     K = P H^T S^-1   (by a solve)
              x = x + K y,        P = (I - K H) P (I - K H)^T + K R K^T   (Joseph form)

The Joseph form equals ``(I - K H) P`` for the optimal gain but stays symmetric positive
semi-definite under rounding.

Box state (the choice made here, as in SORT): ``[cx, cy, s, r, vx, vy, vs]`` with box
centre (cx, cy), area s = w h, aspect ratio r = w / h, and constant velocities of cx, cy
and s; r is modelled as constant. Measurements are ``[cx, cy, s, r]``. Area rather than
(w, h) makes the growth of an approaching object one linear rate, and a constant aspect
ratio keeps the box shape stable through missed detections. Time step 1 frame.
"""

from __future__ import annotations

import numpy as np


class KalmanFilter:
    """Linear Kalman filter with fixed matrices F (n, n), H (k, n), Q (n, n), R (k, k)."""

    def __init__(self, F, H, Q, R, x0, P0):
        self.F = np.array(F, np.float64)
        self.H = np.array(H, np.float64)
        self.Q = np.array(Q, np.float64)
        self.R = np.array(R, np.float64)
        self.x = np.array(x0, np.float64).reshape(-1)
        self.P = np.array(P0, np.float64)
        n, k = self.x.size, self.H.shape[0]
        for name, m, shape in (("F", self.F, (n, n)), ("H", self.H, (k, n)), ("Q", self.Q, (n, n)),
                               ("R", self.R, (k, k)), ("P0", self.P, (n, n))):
            if m.shape != shape:
                raise ValueError(f"KalmanFilter: '{name}' has shape {m.shape}, expected {shape} "
                                 f"for a state of size {n} and measurements of size {k}")

    def predict(self) -> np.ndarray:
        self.x = self.F @ self.x
        self.P = self.F @ self.P @ self.F.T + self.Q
        return self.x

    def update(self, z) -> np.ndarray:
        z = np.asarray(z, np.float64).reshape(-1)
        if z.shape != (self.H.shape[0],):
            raise ValueError(f"KalmanFilter.update: 'z' has shape {z.shape}, expected ({self.H.shape[0]},)")
        y = z - self.H @ self.x
        PHt = self.P @ self.H.T
        S = self.H @ PHt + self.R
        K = np.linalg.solve(S, PHt.T).T  # K = P H^T S^-1 (S symmetric)
        self.x = self.x + K @ y
        IKH = np.eye(self.x.size) - K @ self.H
        self.P = IKH @ self.P @ IKH.T + K @ self.R @ K.T
        return self.x


def box_to_z(box) -> np.ndarray:
    """(x1, y1, x2, y2) -> (cx, cy, s, r)."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)[:4]
    w, h = x2 - x1, y2 - y1
    return np.array([x1 + w / 2, y1 + h / 2, w * h, w / h])


def z_to_box(z) -> np.ndarray:
    """(cx, cy, s, r, ...) -> (x1, y1, x2, y2); a non-positive area gives a degenerate box."""
    cx, cy, s, r = np.asarray(z, np.float64)[:4]
    w = np.sqrt(max(s * r, 0.0))
    h = s / w if w > 0 else 0.0
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


class BoxKalmanFilter(KalmanFilter):
    """Constant-velocity filter over ``[cx, cy, s, r, vx, vy, vs]`` started from one box.

    Noise (variances): measurement ``R = diag(meas_var)`` for (cx, cy, s, r); process
    ``Q = diag(process_var)``; initial ``P0 = diag(init_var)`` with large velocity variance
    because one box says nothing about motion.
    """

    def __init__(self, box, *, meas_var=(1.0, 1.0, 10.0, 1e-2),
                 process_var=(1.0, 1.0, 10.0, 1e-4, 1e-2, 1e-2, 1e-1),
                 init_var=(10.0, 10.0, 100.0, 1e-1, 1e3, 1e3, 1e4)):
        F = np.eye(7)
        F[0, 4] = F[1, 5] = F[2, 6] = 1.0
        H = np.eye(4, 7)
        x0 = np.zeros(7)
        x0[:4] = box_to_z(box)
        super().__init__(F, H, np.diag(process_var), np.diag(meas_var), x0, np.diag(init_var))

    def predict(self) -> np.ndarray:
        if self.x[2] + self.x[6] <= 0:  # the area would vanish: stop shrinking
            self.x[6] = 0.0
        return super().predict()

    def box(self) -> np.ndarray:
        return z_to_box(self.x)
