"""Plausible sensor signals for a whole plant, computed with numpy across all sensors (randomness in blocks).

Each machine has a load in 0..1 that follows its load cycle (a sine with a random phase plus a slow random walk).
Every sensor of the machine is driven by that same load, through a first-order lag for slow quantities, so current,
vibration, pressure and (later) temperature rise and fall together: the physical coupling a multivariate detector
can learn, and that the relation-break fault violates.
"""

from __future__ import annotations

import numpy as np

from plantwatch.producers.plant import Plant

BLOCK = 256  # ticks drawn at once


class PlantSignals:
    """The plant's state; :meth:`step` advances it by one sample period and returns every sensor's value."""

    def __init__(self, plant: Plant, rng: np.random.Generator) -> None:
        machines = plant.machines
        specs = [(m_idx, s) for m_idx, m in enumerate(machines) for s in m.sensors]
        self.rng = rng
        self.dt_s = plant.sample_period_ms / 1000
        self.sensor_machine = np.array([m_idx for m_idx, _ in specs], dtype=np.intp)
        self.idle = np.array([s.idle for _, s in specs])
        self.gain = np.array([s.gain for _, s in specs])
        self.stopped = np.array([s.stopped for _, s in specs])
        self.noise = np.array([s.noise for _, s in specs])
        # Discrete first-order lag: the fraction of the gap to the target closed in one sample period.
        self.alpha = np.array([1.0 if s.lag_s == 0 else 1 - np.exp(-self.dt_s / s.lag_s) for _, s in specs])
        self.low = np.array([s.low for _, s in specs])
        self.high = np.array([s.high for _, s in specs])
        self.drift_per_tick = np.array([s.drift_per_hour for _, s in specs]) * self.dt_s / 3600
        cycles = [m.load for m in machines]
        self.period_s = np.array([c.period_s for c in cycles])
        self.load_mid = np.array([(c.high + c.low) / 2 for c in cycles])
        self.load_amp = np.array([(c.high - c.low) / 2 for c in cycles])
        self.wander_step = np.array([c.wander for c in cycles]) * np.sqrt(self.dt_s / 60)
        self.phase = rng.uniform(0, 2 * np.pi, len(machines))
        self.wander = np.zeros(len(machines))
        self.block_start = -BLOCK  # no block drawn yet
        # Start in steady state: lagged quantities already at the level of the initial load.
        self.lagged_drive = self._load(np.zeros((1, len(machines))), np.zeros(1))[0][self.sensor_machine]
        self.lagged_running = np.ones(len(specs))

    def _load(self, wander: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        """Machine loads (ticks x machines) at the times t_s with the given random walk."""
        cycle = self.load_mid + self.load_amp * np.sin(2 * np.pi * t_s[:, None] / self.period_s + self.phase)
        return np.clip(cycle + wander, 0.0, 1.0)

    def _draw_block(self, first_tick: int) -> None:
        """Randomness and load for BLOCK ticks at once: numpy per block rather than per tick is most of the speed."""
        steps = self.wander_step * self.rng.standard_normal((BLOCK, self.wander.size))
        wander = np.empty_like(steps)
        for i in range(BLOCK):
            self.wander = 0.995 * self.wander + steps[i]
            wander[i] = self.wander
        t_s = (first_tick + np.arange(BLOCK)) * self.dt_s
        self.block_load = self._load(wander, t_s)
        self.block_drive = self.block_load[:, self.sensor_machine]
        self.block_noise = self.noise * self.rng.standard_normal((BLOCK, self.noise.size))
        self.block_start = first_tick

    def step(self, tick: int, running: np.ndarray | None, decoupled: np.ndarray | None) -> np.ndarray:
        """Every sensor's value at sample ``tick`` (ticks come one after another from 0).

        ``running``: per machine, 1 or 0; None when all run. ``decoupled``: per sensor, how far (0..1) its drive is
        pushed away from the machine's load, towards the other half of the load range (the relation-break fault:
        inside the normal range, but no longer what the load says); None for none."""
        if tick >= self.block_start + BLOCK:
            self._draw_block(tick)
        i = tick - self.block_start
        drive = self.block_drive[i]
        run = 1.0
        if running is not None:
            run = running[self.sensor_machine]
            drive = drive * run
        if decoupled is not None:
            drive = drive + decoupled * np.where(drive < 0.5, 0.5, -0.5)
        self.lagged_drive += self.alpha * (drive - self.lagged_drive)
        self.lagged_running += self.alpha * (run - self.lagged_running)
        level = self.stopped + (self.idle - self.stopped) * self.lagged_running + self.gain * self.lagged_drive
        return np.clip(level + self.drift_per_tick * tick + self.block_noise[i], self.low, self.high)
