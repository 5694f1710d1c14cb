#!/usr/bin/python3
"""Golden trajectories for the evaluation samplers (models/sampler.h).

    sampler.py OUTFILE      write every case to the safetensors file OUTFILE

diffusers is not installed where this runs (Debian's python3-torch and numpy
only), so the schedulers of diffusers v0.26.3 are written out here with the
same torch / numpy operations in the same order, so that the values are those
diffusers computes on a CPU:
  - DDIMScheduler (eta, clip_sample, set_alpha_to_one, every prediction type),
  - PNDMScheduler (PLMS with skip_prk_steps, and the PRK warm-up without it),
  - EulerDiscreteScheduler (no churn, linear interpolation, Karras sigmas),
  - FlowMatchEulerDiscreteScheduler (static shift; it appeared after v0.26.3,
    and follows diffusers' later releases),
all with timestep_spacing linspace / leading / trailing, steps_offset and
rescale_betas_zero_snr where the class has them. A kind given by the case
reads the config as diffusers' from_config does: the class's own defaults for
the keys the config lacks, other keys ignored.

Each case runs the pipeline loop on random model outputs (fixed seeds):
latents = x_T · init_noise_sigma, then for every model call i the scaled
model input, the model output (given), the step (with the given variance
noise when DDIM's eta > 0). Tensors CASE/ROLE:
  timesteps (K) F32     the timestep the UNet gets at call i
  sigmas (K+1) F32      Euler and flow only
  init_noise_sigma (1)  F32
  x_T (N, S), model_out, noise (eta > 0), scaled, samples: (K, N, S) F32 —
  scaled[i] the model input at call i, samples[i] the sample after step i.
cfg/uncond, cfg/cond, cfg/out (scale 7.5), cfg/rescaled (rescale_noise_cfg
of out with guidance_rescale 0.7).
The metadata maps each case to {"config": {...}, "kind": KIND or null,
"steps": K_inference, "eta": ETA}. tests/unit/test_sampler.c runs this with
/usr/bin/python3 and compares.

Run beside diffusers itself on the same inputs (0.26.3, and 0.30.3 for the
flow scheduler, with this torch and numpy), every tensor here is identical.
"""
import json
import math
import struct
import sys

import numpy as np
import torch

torch.set_num_threads(1)

N, S = 2, 4 * 4 * 5

SD = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
      "num_train_timesteps": 1000, "steps_offset": 1, "timestep_spacing": "leading",
      "trained_betas": None, "clip_sample": False}

# name -> (config, kind override or None, num_inference_steps, eta)
CASES = {
    "sd1_pndm": (dict(SD, _class_name="PNDMScheduler", prediction_type="epsilon",
                      set_alpha_to_one=False, skip_prk_steps=True), None, 50, 0.0),
    "sd2_ddim": (dict(SD, _class_name="DDIMScheduler", prediction_type="v_prediction",
                      set_alpha_to_one=False), None, 25, 0.0),
    "sd2_ddim_eta1": (dict(SD, _class_name="DDIMScheduler", prediction_type="v_prediction",
                           set_alpha_to_one=False), None, 25, 1.0),
    "sdxl_euler": (dict(SD, _class_name="EulerDiscreteScheduler", prediction_type="epsilon",
                        interpolation_type="linear", use_karras_sigmas=False), None, 30, 0.0),
    "ddim_trailing": (dict(SD, _class_name="DDIMScheduler", timestep_spacing="trailing",
                           steps_offset=0, clip_sample=True), None, 7, 0.0),
    "ddim_linspace_sample": ({"_class_name": "DDIMScheduler", "prediction_type": "sample",
                              "timestep_spacing": "linspace", "clip_sample": False},
                             None, 9, 0.5),
    "zsnr_ddim": (dict(SD, _class_name="DDIMScheduler", prediction_type="v_prediction",
                       timestep_spacing="trailing", steps_offset=0, set_alpha_to_one=False,
                       rescale_betas_zero_snr=True), None, 20, 0.0),
    "zsnr_euler": (dict(SD, _class_name="EulerDiscreteScheduler", prediction_type="v_prediction",
                        timestep_spacing="trailing", steps_offset=0,
                        rescale_betas_zero_snr=True), None, 20, 0.0),
    "euler_linspace": ({"_class_name": "EulerDiscreteScheduler", "beta_schedule": "linear"},
                       None, 13, 0.0),
    "euler_karras": (dict(SD, _class_name="EulerDiscreteScheduler", timestep_spacing="trailing",
                          steps_offset=0, use_karras_sigmas=True), None, 25, 0.0),
    "euler_trailing_cos": ({"_class_name": "EulerDiscreteScheduler",
                            "beta_schedule": "squaredcos_cap_v2", "timestep_spacing": "trailing"},
                           None, 11, 0.0),
    "pndm_prk": ({"_class_name": "PNDMScheduler"}, None, 20, 0.0),
    "pndm_vpred_linspace": (dict(SD, _class_name="PNDMScheduler", prediction_type="v_prediction",
                                 timestep_spacing="linspace", skip_prk_steps=True), None, 15, 0.0),
    "pndm_trailing": (dict(SD, _class_name="PNDMScheduler", timestep_spacing="trailing",
                           steps_offset=0, skip_prk_steps=True), None, 7, 0.0),
    "sd1_as_ddim": (dict(SD, _class_name="PNDMScheduler", prediction_type="epsilon",
                         set_alpha_to_one=False, skip_prk_steps=True), "ddim", 10, 0.0),
    "sd1_as_euler": (dict(SD, _class_name="PNDMScheduler", prediction_type="epsilon",
                          set_alpha_to_one=False, skip_prk_steps=True), "euler", 10, 0.0),
    "flow_shift3": ({"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0,
                     "num_train_timesteps": 1000}, None, 28, 0.0),
    "flow_shift1": ({"_class_name": "FlowMatchEulerDiscreteScheduler"}, None, 6, 0.0),
}

KINDS = {"DDIMScheduler": "ddim", "PNDMScheduler": "pndm", "EulerDiscreteScheduler": "euler",
         "FlowMatchEulerDiscreteScheduler": "flow"}

BETAS = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02,
         "beta_schedule": "linear", "trained_betas": None}
DEFAULTS = {
    "ddim": dict(BETAS, clip_sample=True, set_alpha_to_one=True, steps_offset=0,
                 prediction_type="epsilon", thresholding=False, clip_sample_range=1.0,
                 timestep_spacing="leading", rescale_betas_zero_snr=False),
    "pndm": dict(BETAS, skip_prk_steps=False, set_alpha_to_one=False, prediction_type="epsilon",
                 timestep_spacing="leading", steps_offset=0),
    "euler": dict(BETAS, prediction_type="epsilon", interpolation_type="linear",
                  use_karras_sigmas=False, sigma_min=None, sigma_max=None,
                  timestep_spacing="linspace", timestep_type="discrete", steps_offset=0,
                  rescale_betas_zero_snr=False),
    "flow": {"num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False},
}


def resolve(config, kind):
    """The config as the class `kind` reads it (from_config): its defaults, the keys it knows."""
    kind = kind or KINDS[config["_class_name"]]
    c = dict(DEFAULTS[kind])
    for k, v in config.items():
        if k in c:
            c[k] = v
    return kind, c


# ---- betas (as every one of these classes builds them) ------------------------------------

def betas_for_alpha_bar(T, max_beta=0.999):
    def abar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return torch.tensor([min(1 - abar((i + 1) / T) / abar(i / T), max_beta) for i in range(T)],
                        dtype=torch.float32)


def rescale_zero_terminal_snr(betas):
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    s = alphas_cumprod.sqrt()
    s0, sT = s[0].clone(), s[-1].clone()
    s -= sT
    s *= s0 / (s0 - sT)
    abar = s ** 2
    return 1 - torch.cat([abar[0:1], abar[1:] / abar[:-1]])


def alphas_cumprod_of(c, rescale):
    T = c["num_train_timesteps"]
    if c["beta_schedule"] == "linear":
        betas = torch.linspace(c["beta_start"], c["beta_end"], T, dtype=torch.float32)
    elif c["beta_schedule"] == "scaled_linear":
        betas = torch.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, T,
                               dtype=torch.float32) ** 2
    else:
        betas = betas_for_alpha_bar(T)
    if rescale:
        betas = rescale_zero_terminal_snr(betas)
    return torch.cumprod(1.0 - betas, dim=0)


# ---- DDIMScheduler -------------------------------------------------------------------------

class DDIM:
    def __init__(self, c, n):
        self.c, self.n = c, n
        T = c["num_train_timesteps"]
        self.ac = alphas_cumprod_of(c, c["rescale_betas_zero_snr"])
        self.final = torch.tensor(1.0) if c["set_alpha_to_one"] else self.ac[0]
        sp = c["timestep_spacing"]
        if sp == "linspace":
            ts = np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
        elif sp == "leading":
            ts = (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(np.int64)
            ts += c["steps_offset"]
        else:
            ts = np.round(np.arange(T, 0, -T / n)).astype(np.int64)
            ts -= 1
        self.timesteps = torch.from_numpy(ts)
        self.init_noise_sigma = 1.0

    def scale(self, x, i):
        return x

    def step(self, mo, i, x, eta, noise):
        c, t = self.c, int(self.timesteps[i])
        prev = t - c["num_train_timesteps"] // self.n
        a_t = self.ac[t]
        a_prev = self.ac[prev] if prev >= 0 else self.final
        b_t = 1 - a_t
        p = c["prediction_type"]
        if p == "epsilon":
            x0 = (x - b_t ** (0.5) * mo) / a_t ** (0.5)
            eps = mo
        elif p == "sample":
            x0 = mo
            eps = (x - a_t ** (0.5) * x0) / b_t ** (0.5)
        else:
            x0 = (a_t ** 0.5) * x - (b_t ** 0.5) * mo
            eps = (a_t ** 0.5) * mo + (b_t ** 0.5) * x
        if c["clip_sample"]:
            x0 = x0.clamp(-c["clip_sample_range"], c["clip_sample_range"])
        b_prev = 1 - a_prev
        variance = (b_prev / b_t) * (1 - a_t / a_prev)
        std = eta * variance ** (0.5)
        direction = (1 - a_prev - std ** 2) ** (0.5) * eps
        out = a_prev ** (0.5) * x0 + direction
        if eta > 0:
            out = out + std * noise
        return out


# ---- PNDMScheduler -------------------------------------------------------------------------

class PNDM:
    def __init__(self, c, n):
        self.c, self.n = c, n
        T = c["num_train_timesteps"]
        self.ac = alphas_cumprod_of(c, False)  # PNDM has no rescale_betas_zero_snr
        self.final = torch.tensor(1.0) if c["set_alpha_to_one"] else self.ac[0]
        sp = c["timestep_spacing"]
        if sp == "linspace":
            ts = np.linspace(0, T - 1, n).round().astype(np.int64)
        elif sp == "leading":
            ts = (np.arange(0, n) * (T // n)).round()
            ts += c["steps_offset"]
        else:
            ts = np.round(np.arange(T, 0, -T / n))[::-1].astype(np.int64)
            ts -= 1
        if c["skip_prk_steps"]:
            self.prk = np.array([])
            self.plms = np.concatenate([ts[:-1], ts[-2:-1], ts[-1:]])[::-1].copy()
        else:
            prk = np.array(ts[-4:]).repeat(2) + np.tile(np.array([0, T // n // 2]), 4)
            self.prk = (prk[:-1].repeat(2)[1:-1])[::-1].copy()
            self.plms = ts[:-3][::-1].copy()
        self.timesteps = torch.from_numpy(np.concatenate([self.prk, self.plms]).astype(np.int64))
        self.init_noise_sigma = 1.0
        self.ets, self.counter, self.cur_mo, self.cur_sample = [], 0, 0, None

    def scale(self, x, i):
        return x

    def step(self, mo, i, x, eta, noise):
        t = int(self.timesteps[i])
        if self.counter < len(self.prk) and not self.c["skip_prk_steps"]:
            return self.step_prk(mo, t, x)
        return self.step_plms(mo, t, x)

    def step_prk(self, mo, t, x):
        T = self.c["num_train_timesteps"]
        diff = 0 if self.counter % 2 else T // self.n // 2
        prev = t - diff
        t = self.prk[self.counter // 4 * 4]
        if self.counter % 4 == 0:
            self.cur_mo += 1 / 6 * mo
            self.ets.append(mo)
            self.cur_sample = x
        elif (self.counter - 1) % 4 == 0:
            self.cur_mo += 1 / 3 * mo
        elif (self.counter - 2) % 4 == 0:
            self.cur_mo += 1 / 3 * mo
        elif (self.counter - 3) % 4 == 0:
            mo = self.cur_mo + 1 / 6 * mo
            self.cur_mo = 0
        cur = self.cur_sample if self.cur_sample is not None else x
        out = self.prev_sample(cur, t, prev, mo)
        self.counter += 1
        return out

    def step_plms(self, mo, t, x):
        T = self.c["num_train_timesteps"]
        prev = t - T // self.n
        if self.counter != 1:
            self.ets = self.ets[-3:]
            self.ets.append(mo)
        else:
            prev = t
            t = t + T // self.n
        e = self.ets
        if len(e) == 1 and self.counter == 0:
            self.cur_sample = x
        elif len(e) == 1 and self.counter == 1:
            mo = (mo + e[-1]) / 2
            x = self.cur_sample
            self.cur_sample = None
        elif len(e) == 2:
            mo = (3 * e[-1] - e[-2]) / 2
        elif len(e) == 3:
            mo = (23 * e[-1] - 16 * e[-2] + 5 * e[-3]) / 12
        else:
            mo = (1 / 24) * (55 * e[-1] - 59 * e[-2] + 37 * e[-3] - 9 * e[-4])
        out = self.prev_sample(x, t, prev, mo)
        self.counter += 1
        return out

    def prev_sample(self, x, t, prev, mo):
        a_t = self.ac[t]
        a_prev = self.ac[prev] if prev >= 0 else self.final
        b_t = 1 - a_t
        b_prev = 1 - a_prev
        if self.c["prediction_type"] == "v_prediction":
            mo = (a_t ** 0.5) * mo + (b_t ** 0.5) * x
        coeff = (a_prev / a_t) ** (0.5)
        denom = a_t * b_prev ** (0.5) + (a_t * b_t * a_prev) ** (0.5)
        return coeff * x - (a_prev - a_t) * mo / denom


# ---- EulerDiscreteScheduler ----------------------------------------------------------------

class Euler:
    def __init__(self, c, n):
        self.c, self.n = c, n
        T = c["num_train_timesteps"]
        ac = alphas_cumprod_of(c, c["rescale_betas_zero_snr"])
        if c["rescale_betas_zero_snr"]:
            ac[-1] = 2 ** -24
        sp = c["timestep_spacing"]
        if sp == "linspace":
            ts = np.linspace(0, T - 1, n, dtype=np.float32)[::-1].copy()
        elif sp == "leading":
            ts = (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(np.float32)
            ts += c["steps_offset"]
        else:
            ts = (np.arange(T, 0, -T / n)).round().copy().astype(np.float32)
            ts -= 1
        sig = np.array(((1 - ac) / ac) ** 0.5)
        log_sig = np.log(sig)
        sigmas = np.interp(ts, np.arange(0, len(sig)), sig)
        if c["use_karras_sigmas"]:
            sigmas = self.karras(sigmas, n)
            ts = np.array([self.sigma_to_t(s, log_sig) for s in sigmas])
        sigmas = torch.from_numpy(sigmas).to(dtype=torch.float32)
        self.timesteps = torch.from_numpy(ts.astype(np.float32))
        self.sigmas = torch.cat([sigmas, torch.zeros(1)])
        smax = self.sigmas.max()
        self.init_noise_sigma = smax if sp in ("linspace", "trailing") else (smax ** 2 + 1) ** 0.5

    def karras(self, in_sigmas, n):
        c = self.c
        smin = c["sigma_min"] if c["sigma_min"] is not None else in_sigmas[-1].item()
        smax = c["sigma_max"] if c["sigma_max"] is not None else in_sigmas[0].item()
        rho = 7.0
        ramp = np.linspace(0, 1, n)
        lo, hi = smin ** (1 / rho), smax ** (1 / rho)
        return (hi + ramp * (lo - hi)) ** rho

    @staticmethod
    def sigma_to_t(sigma, log_sigmas):
        log_sigma = np.log(np.maximum(sigma, 1e-10))
        dists = log_sigma - log_sigmas[:, np.newaxis]
        low_idx = np.cumsum((dists >= 0), axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = log_sigmas[low_idx], log_sigmas[high_idx]
        w = np.clip((low - log_sigma) / (low - high), 0, 1)
        t = (1 - w) * low_idx + w * high_idx
        return t.reshape(sigma.shape)

    def scale(self, x, i):
        sigma = self.sigmas[i]
        return x / ((sigma ** 2 + 1) ** 0.5)

    def step(self, mo, i, x, eta, noise):
        x = x.to(torch.float32)
        sigma = self.sigmas[i]
        gamma = 0.0  # s_churn 0
        sigma_hat = sigma * (gamma + 1)
        p = self.c["prediction_type"]
        if p == "sample":
            x0 = mo
        elif p == "epsilon":
            x0 = x - sigma_hat * mo
        else:
            x0 = mo * (-sigma / (sigma ** 2 + 1) ** 0.5) + (x / (sigma ** 2 + 1))
        derivative = (x - x0) / sigma_hat
        dt = self.sigmas[i + 1] - sigma_hat
        return x + derivative * dt


# ---- FlowMatchEulerDiscreteScheduler (static shift) ----------------------------------------

class Flow:
    def __init__(self, c, n):
        T, shift = c["num_train_timesteps"], c["shift"]
        ts = np.linspace(1, T, T, dtype=np.float32)[::-1].copy()
        s = torch.from_numpy(ts).to(dtype=torch.float32) / T
        s = shift * s / (1 + (shift - 1) * s)
        smin, smax = s[-1].item(), s[0].item()
        ts = np.linspace(smax * T, smin * T, n)
        s = ts / T
        s = shift * s / (1 + (shift - 1) * s)
        s = torch.from_numpy(s).to(dtype=torch.float32)
        self.timesteps = s * T
        self.sigmas = torch.cat([s, torch.zeros(1)])
        self.init_noise_sigma = 1.0

    def scale(self, x, i):
        return x

    def step(self, mo, i, x, eta, noise):
        x = x.to(torch.float32)
        return x + (self.sigmas[i + 1] - self.sigmas[i]) * mo


SCHEDULERS = {"ddim": DDIM, "pndm": PNDM, "euler": Euler, "flow": Flow}


def make(config, kind, n):
    kind, c = resolve(config, kind)
    return SCHEDULERS[kind](c, n)


def run(sched, x_T, model_out, noise, eta):
    """The pipeline loop over given model outputs: (samples, scaled) stacked per call."""
    latents = x_T * sched.init_noise_sigma
    samples, scaled = [], []
    for i in range(len(sched.timesteps)):
        scaled.append(sched.scale(latents, i))
        latents = sched.step(model_out[i], i, latents, eta, noise[i])
        samples.append(latents)
    return torch.stack(samples), torch.stack(scaled)


def inputs(name, K):
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    x_T = torch.randn(N, S, generator=g)
    model_out = torch.randn(K, N, S, generator=g)
    noise = torch.randn(K, N, S, generator=g)
    return x_T, model_out, noise


TENSORS, META = {}, {}


def put(name, a):
    if isinstance(a, torch.Tensor):
        a = a.detach().numpy()
    TENSORS[name] = np.ascontiguousarray(np.asarray(a, dtype=np.float32)).copy()


def sampler_cases():
    for name, (config, kind, n, eta) in CASES.items():
        sched = make(config, kind, n)
        K = len(sched.timesteps)
        x_T, model_out, noise = inputs(name, K)
        samples, scaled = run(sched, x_T, model_out, noise, eta)
        put(name + "/timesteps", sched.timesteps.to(torch.float32))
        if hasattr(sched, "sigmas"):
            put(name + "/sigmas", sched.sigmas)
        put(name + "/init_noise_sigma", np.array([float(sched.init_noise_sigma)]))
        put(name + "/x_T", x_T)
        put(name + "/model_out", model_out)
        if eta > 0:
            put(name + "/noise", noise)
        put(name + "/scaled", scaled)
        put(name + "/samples", samples)
        META[name] = json.dumps({"config": config, "kind": kind, "steps": n, "eta": eta})


def rescale_noise_cfg(noise_cfg, noise_pred_text, guidance_rescale):
    std_text = noise_pred_text.std(dim=list(range(1, noise_pred_text.ndim)), keepdim=True)
    std_cfg = noise_cfg.std(dim=list(range(1, noise_cfg.ndim)), keepdim=True)
    rescaled = noise_cfg * (std_text / std_cfg)
    return guidance_rescale * rescaled + (1 - guidance_rescale) * noise_cfg


def cfg_case():
    g = torch.Generator().manual_seed(7)
    uncond = torch.randn(N, 4, 5, 6, generator=g)
    cond = uncond + 0.3 * torch.randn(N, 4, 5, 6, generator=g)
    out = uncond + 7.5 * (cond - uncond)
    for role, t in (("uncond", uncond), ("cond", cond), ("out", out),
                    ("rescaled", rescale_noise_cfg(out, cond, 0.7))):
        put("cfg/" + role, t.reshape(N, -1))
    META["cfg"] = json.dumps({"scale": 7.5, "guidance_rescale": 0.7})


def write_safetensors(path, tensors, meta):
    header = {"__metadata__": meta}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = tensors[name]
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: sampler.py OUTFILE")
    sampler_cases()
    cfg_case()
    write_safetensors(sys.argv[1], TENSORS, META)


if __name__ == "__main__":
    main()
