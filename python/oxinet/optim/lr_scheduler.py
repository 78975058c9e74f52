"""Learning-rate schedules (course F22 plus PyTorch's usual ones), ``torch.optim.lr_scheduler``
shaped: build with the optimizer, call ``step()`` once per epoch (or per iteration) after
``optimizer.step()``; ``get_last_lr()`` returns the current rates.

Each scheduler computes the rate in closed form from the group's initial rate and
``last_epoch`` (the number of ``step()`` calls so far), so ``step(epoch)`` may jump.
"""

from __future__ import annotations

import bisect
import math

from oxinet.optim.optimizer import Optimizer


class LRScheduler:
    def __init__(self, optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        else:
            for i, g in enumerate(optimizer.param_groups):
                if "initial_lr" not in g:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming an optimizer")
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr: float, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_lr(self):
        return [self.lr_at(b, self.last_epoch) for b in self.base_lrs]

    def step(self, epoch=None):
        self.last_epoch = self.last_epoch + 1 if epoch is None else int(epoch)
        lrs = self.get_lr()
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)


_LRScheduler = LRScheduler


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(epoch)."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        n = len(optimizer.param_groups)
        self.lr_lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if len(self.lr_lambdas) != n:
            raise ValueError(f"LambdaLR: expected {n} lr_lambdas, got {len(self.lr_lambdas)}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [b * f(self.last_epoch) for b, f in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}


class InverseTimeLR(LRScheduler):
    """Course decay lr = lr0 / (1 + decay_rate * epoch) (F22; lr0 = 0.2, decay 1 gives
    0.1, 0.067, 0.05, 0.04 after 1-4 steps). ``staircase_every`` > 1 uses
    floor(epoch / staircase_every) instead of epoch."""

    def __init__(self, optimizer, decay_rate: float, staircase_every: int = 1, last_epoch=-1):
        if decay_rate < 0:
            raise ValueError(f"InverseTimeLR: 'decay_rate' must be >= 0, got {decay_rate}")
        self.decay_rate = decay_rate
        self.staircase_every = staircase_every
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        e = epoch // self.staircase_every
        return base_lr / (1 + self.decay_rate * e)


class ExponentialLR(LRScheduler):
    """lr = lr0 * gamma^epoch (course: 0.95^epoch)."""

    def __init__(self, optimizer, gamma: float, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma**epoch


class InverseSqrtLR(LRScheduler):
    """Course decay lr = lr0 * k / sqrt(epoch_num) with epoch_num = last_epoch + 1, so the first
    epoch runs at k * lr0."""

    def __init__(self, optimizer, k: float = 1.0, last_epoch=-1):
        self.k = k
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.k / math.sqrt(epoch + 1)


class StepLR(LRScheduler):
    """Staircase: lr = lr0 * gamma^(epoch // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch=-1):
        if step_size <= 0:
            raise ValueError(f"StepLR: 'step_size' must be positive, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """lr = lr0 * gamma^(number of milestones <= epoch)."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch=-1):
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (lr0 - eta_min) (1 + cos(pi epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch=-1):
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: 'T_max' must be positive, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing restarted every T_i epochs, T_0 first and each period T_mult times
    the previous (SGDR)."""

    def __init__(self, optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0, last_epoch=-1):
        if T_0 <= 0 or not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"CosineAnnealingWarmRestarts: need T_0 > 0 and an integer T_mult >= 1, "
                             f"got T_0={T_0}, T_mult={T_mult}")
        self.T_0, self.T_mult, self.eta_min = T_0, T_mult, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        if self.T_mult == 1:
            t_cur, t_i = epoch % self.T_0, self.T_0
        else:
            n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
            t_cur = epoch - self.T_0 * (self.T_mult**n - 1) // (self.T_mult - 1)
            t_i = self.T_0 * self.T_mult**n
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


class PolynomialLR(LRScheduler):
    """lr = lr0 * (1 - min(epoch, total_iters) / total_iters)^power."""

    def __init__(self, optimizer, total_iters: int = 5, power: float = 1.0, last_epoch=-1):
        if total_iters <= 0:
            raise ValueError(f"PolynomialLR: 'total_iters' must be positive, got {total_iters}")
        self.total_iters, self.power = total_iters, power
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * (1 - min(epoch, self.total_iters) / self.total_iters) ** self.power


class ConstantLR(LRScheduler):
    """lr = lr0 * factor for the first ``total_iters`` steps, then lr0."""

    def __init__(self, optimizer, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch=-1):
        if not 0 <= factor <= 1:
            raise ValueError(f"ConstantLR: 'factor' must be in [0, 1], got {factor}")
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * (self.factor if epoch < self.total_iters else 1.0)


class NoamLR(LRScheduler):
    """The Transformer schedule: lr = lr0 * d_model^-0.5 * min(s^-0.5, s * warmup^-1.5) with
    s = epoch + 1 (linear warmup, then inverse square root). Set the optimizer's lr to the
    paper's scale factor (1.0 in "Attention Is All You Need")."""

    def __init__(self, optimizer, d_model: int, warmup_steps: int = 4000, last_epoch=-1):
        if d_model <= 0 or warmup_steps <= 0:
            raise ValueError(f"NoamLR: d_model and warmup_steps must be positive, got {d_model}, {warmup_steps}")
        self.d_model, self.warmup_steps = d_model, warmup_steps
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        s = epoch + 1
        return base_lr * self.d_model**-0.5 * min(s**-0.5, s * self.warmup_steps**-1.5)


class LinearLR(LRScheduler):
    """Linear ramp of the factor from ``start_factor`` to ``end_factor`` over ``total_iters``
    steps, then constant (a linear warmup)."""

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5,
                 last_epoch=-1):
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError("LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1]")
        if total_iters <= 0:
            raise ValueError(f"LinearLR: 'total_iters' must be positive, got {total_iters}")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        frac = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)


class LinearWarmup(LRScheduler):
    """lr = lr0 * (epoch + 1) / warmup_steps for the first ``warmup_steps`` steps, then lr0."""

    def __init__(self, optimizer, warmup_steps: int, last_epoch=-1):
        if warmup_steps <= 0:
            raise ValueError(f"LinearWarmup: 'warmup_steps' must be positive, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * min(1.0, (epoch + 1) / self.warmup_steps)


class SequentialLR(LRScheduler):
    """Run ``schedulers[i]`` from ``milestones[i-1]`` on (each restarted at its epoch 0)."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: expected {len(schedulers) - 1} milestones, got {len(milestones)}")
        self.schedulers = list(schedulers)
        self.milestones = list(milestones)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        i = bisect.bisect_right(self.milestones, self.last_epoch)
        start = self.milestones[i - 1] if i > 0 else 0
        s = self.schedulers[i]
        return [s.lr_at(b, self.last_epoch - start) for b in self.base_lrs]


class ReduceLROnPlateau:
    """Multiply the rate by ``factor`` when the metric passed to ``step(metric)`` has not
    improved for more than ``patience`` steps (PyTorch's rule, thresholds and cooldown)."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: 'factor' should be < 1.0, got {factor}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: 'mode' must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: 'threshold_mode' must be 'rel' or 'abs', got {threshold_mode!r}")
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        self.cooldown_counter = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1)
        return a > best + self.threshold

    def step(self, metrics, epoch=None):
        current = float(metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = g["lr"]
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)
