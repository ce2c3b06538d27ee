"""Procedural scenes with exact per-pixel depth, in the spirit of Depth Anything V2's rendered training data.

A numpy-vectorised ray caster: one ray per pixel from a pinhole camera with random height, field of view, yaw, pitch
and roll, intersected analytically with textured planes, yaw-rotated boxes, spheres and vertical cylinders. Three
scene families:

- ``room``: a box seen from inside (floor, walls, ceiling), furniture (tables, cabinets, shelves), balls, lamps,
  pictures on the walls;
- ``street``: a road with sidewalks, rows of buildings with windows, cars, poles, trees, sky;
- ``objects``: an open textured ground plane with primitives at 1-80 m, some floating, sky.

Depth cues a model can learn from these: the ground plane's perspective gradient, occlusion, relative size of
objects of one family, texture density, contact shadows (cast by a sun onto the floor/ground), Lambertian shading and
atmospheric fog outdoors. Depth is z-depth in metres (distance along the optical axis, like an RGB-D sensor), exact
to float32; sky has no depth (``depth == 0``, ``sky_mask == True``).

Every image is a pure function of ``(seed, shard, index)``: ``render_sample(seed, index, shard=0)`` is deterministic,
so a stream can be resumed or sharded without storing anything but the position.

Speed (see ``train/benchmark_synthetic.py``): each primitive is only intersected inside the screen rectangle its
bounding box projects to, and shading is deferred (computed once per visible pixel), so the cost is about
proportional to the number of covered pixels rather than to pixels x objects.

Command line::

    python train/synthetic_grid.py --grid docs/synthetic_grid.png   # samples, depth beside each

Why one file of ~1000 lines: it is one self-contained renderer used only through `render_sample` and
`synthetic_stream`; its parts (noise textures and materials, analytic primitives, the three scene families, camera,
deferred shading and shadows) share private geometry helpers and only make sense together.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

logger = logging.getLogger(__name__)

SCENE_KINDS = ("room", "street", "objects")
_NEAR = 0.05  # metres: hits closer than this to the camera are ignored
_NOISE_SIZE = 256  # side of the tileable noise texture
_MAX_GROUND_DISTANCE = 3000.0  # metres


@dataclass
class SyntheticConfig:
    """Settings of the procedural scene generator.

    Args:
        height (`int`, defaults to 256): image height in pixels.
        width (`int`, defaults to 256): image width in pixels.
        scene_kinds (`tuple[str, ...]`, defaults to all of `SCENE_KINDS`): families drawn uniformly per sample.
        fov_range_deg (`tuple[float, float]`, defaults to (45, 95)): horizontal field of view range in degrees.
        fog (`bool`, defaults to True): atmospheric perspective outdoors.
        shadows (`bool`, defaults to True): sun shadows cast by objects onto the floor/ground.
        sensor_noise (`float`, defaults to 0.02): amplitude of the fixed-pattern noise added to the image (0-1 scale).
    """

    height: int = 256
    width: int = 256
    scene_kinds: tuple[str, ...] = SCENE_KINDS
    fov_range_deg: tuple[float, float] = (45.0, 95.0)
    fog: bool = True
    shadows: bool = True
    sensor_noise: float = 0.02

    def __post_init__(self) -> None:
        if not (isinstance(self.height, int) and isinstance(self.width, int) and self.height >= 8 and self.width >= 8):
            raise ValueError(f"height and width must be integers >= 8, got {(self.height, self.width)!r}")
        self.scene_kinds = tuple(self.scene_kinds)
        unknown = [kind for kind in self.scene_kinds if kind not in SCENE_KINDS]
        if not self.scene_kinds or unknown:
            raise ValueError(f"scene_kinds must be a non-empty subset of {SCENE_KINDS}, got {self.scene_kinds!r}")
        low, high = self.fov_range_deg
        if not 10.0 <= low <= high <= 150.0:
            raise ValueError(f"fov_range_deg must satisfy 10 <= low <= high <= 150, got {self.fov_range_deg!r}")
        if not 0.0 <= self.sensor_noise <= 0.5:
            raise ValueError(f"sensor_noise must be in [0, 0.5], got {self.sensor_noise!r}")


# ----------------------------------------------------------------------------------------------------------------------
# Textures


@lru_cache(maxsize=1)
def _noise_texture() -> np.ndarray:
    """Tileable 1/f noise, (256, 256) float32 in [0, 1]; fixed, so renders do not depend on call order."""
    rng = np.random.default_rng(1234)
    white = rng.standard_normal((_NOISE_SIZE, _NOISE_SIZE))
    freq = np.fft.fftfreq(_NOISE_SIZE)
    radius = np.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2)  # (256, 256)
    radius[0, 0] = 1.0
    spectrum = np.fft.fft2(white) / radius**1.1
    spectrum[0, 0] = 0.0
    noise = np.real(np.fft.ifft2(spectrum))
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return noise.astype(np.float32)


_NOISE_FLAT = _noise_texture().ravel()  # (256 * 256,)


def _sample_noise(u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Nearest-neighbour lookup of the tileable noise at world coordinates (u, v) in metres x `scale` texels/metre."""
    iu = (u * scale).astype(np.int32) & (_NOISE_SIZE - 1)
    iv = (v * scale).astype(np.int32) & (_NOISE_SIZE - 1)
    return _NOISE_FLAT[(iv << 8) | iu]  # 256 = 1 << 8 texels per row


@dataclass
class Material:
    """Surface appearance: a base colour, a second colour and a pattern evaluated on world-space (u, v) metres."""

    color: np.ndarray  # (3,) float32 in [0, 1]
    color2: np.ndarray  # (3,) float32
    pattern: str = "plain"  # plain | checker | stripes | bricks | planks | windows | road | grass
    scale: float = 1.0  # pattern period in metres
    grain: float = 0.25  # strength of the fine noise modulation

    def shade(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Albedo at N surface points. u, v: (N,) metres. Returns (3, N) float32."""
        inv = 1.0 / self.scale
        # integer cell indices and fractional parts, offset to stay positive (truncation == floor); int ops are
        # several times faster than np.floor / % on float arrays
        if self.pattern == "checker":
            mix = ((_cells(u, inv) + _cells(v, inv)) & 1).astype(np.float32)
        elif self.pattern == "stripes":
            mix = (_cells(u, inv) & 1).astype(np.float32)
        elif self.pattern == "bricks":
            row_position = v * (2.0 * inv) + _OFFSET
            row = row_position.astype(np.int32)
            column_position = u * inv + _OFFSET + 0.5 * (row & 1)
            mortar = (row_position - row < 0.1) | (column_position - column_position.astype(np.int32) < 0.05)
            mix = mortar.astype(np.float32)
        elif self.pattern == "planks":
            position = u * inv + _OFFSET
            plank = position.astype(np.int32)
            mix = np.float32(0.6) * _sample_noise(plank * 7.3 + v * 0.3, plank * 3.1, 16.0)
            mix += np.float32(0.4) * (position - plank < 0.04)
        elif self.pattern == "windows":
            wx, wy = _fraction(u, inv), _fraction(v, inv / 1.2)
            mix = ((wx > 0.25) & (wx < 0.75) & (wy > 0.3) & (wy < 0.8)).astype(np.float32)
        elif self.pattern == "road":
            mix = ((np.abs(u) < 0.08) & (_fraction(v, 1.0 / 3.0) < 0.5)).astype(np.float32)
        elif self.pattern == "grass":
            mix = _sample_noise(u, v, 2.0 * inv)
        else:
            mix = _sample_noise(u, v, inv) * np.float32(0.5)
        albedo = self.color[:, None] + (self.color2 - self.color)[:, None] * mix[None, :]  # (3, N)
        if self.grain > 0:
            grain = _sample_noise(u + 0.37 * v, v - 0.21 * u, 23.0) * np.float32(2.0 * self.grain)
            albedo *= (grain + np.float32(1.0 - self.grain))[None, :]
        return albedo


_OFFSET = 4096.0  # cells: keeps world coordinates positive so that int truncation is floor


def _cells(x: np.ndarray, inv_scale: float) -> np.ndarray:
    """Integer cell index floor(x / scale) (+ a constant), (N,) int32."""
    return (x * inv_scale + _OFFSET).astype(np.int32)


def _fraction(x: np.ndarray, inv_scale: float) -> np.ndarray:
    """Fractional part of x / scale, (N,) float32 in [0, 1)."""
    position = x * inv_scale + _OFFSET
    return position - position.astype(np.int32)


def _pick(rng: np.random.Generator, options: tuple):
    """One of `options`, uniformly (faster than `rng.choice`, which builds an array every call)."""
    return options[int(rng.integers(len(options)))]


def _random_color(
    rng: np.random.Generator, saturation: float = 0.5, value: tuple[float, float] = (0.25, 0.9)
) -> np.ndarray:
    """An RGB colour, (3,) float32: a random hue with the given maximum saturation and a value range."""
    hue = rng.uniform(0, 1)
    sat = rng.uniform(0, saturation)
    val = rng.uniform(*value)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    rgb = val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return rgb.astype(np.float32)


def _random_material(
    rng: np.random.Generator, patterns: tuple[str, ...], scale: tuple[float, float] = (0.2, 1.0)
) -> Material:
    color = _random_color(rng)
    color2 = np.clip(color * rng.uniform(0.4, 1.4) + rng.uniform(-0.15, 0.15, 3), 0.02, 1.0).astype(np.float32)
    return Material(color, color2, _pick(rng, patterns), float(rng.uniform(*scale)), float(rng.uniform(0.05, 0.3)))


# ----------------------------------------------------------------------------------------------------------------------
# Primitives. Each exposes a world-space bounding box (for screen-space culling), `intersect` on a block of rays and
# `surface` (normals and texture coordinates) at hit points. Rays: origin o (3 scalars), directions d (3 arrays of one
# block shape) whose optical-axis component is 1, so the ray parameter t is the z-depth.


@dataclass
class Box:
    """A box rotated by `yaw` about the vertical axis. center: (3,), half: (3,) half-sizes in metres."""

    center: np.ndarray
    half: np.ndarray
    yaw: float
    material: Material
    inside: bool = False  # True for a room seen from inside: the exit distance is the hit
    face_materials: tuple[Material, ...] | None = None  # per face: -x, +x, -y, +y, -z, +z

    def __post_init__(self) -> None:
        # python floats: NumPy 2 would promote float32 arrays to float64 when mixed with np.float64 scalars
        self.center = tuple(float(value) for value in self.center)
        self.half = tuple(float(value) for value in self.half)
        self.yaw = float(self.yaw)

    def bounds(self) -> np.ndarray:
        radius = math.hypot(self.half[0], self.half[2])
        center, extent = np.array(self.center), np.array([radius, self.half[1], radius])
        return np.array([center - extent, center + extent])

    def _to_local(self, x, y, z, translate: bool):
        if translate:
            x, y, z = x - self.center[0], y - self.center[1], z - self.center[2]
        if self.yaw == 0.0:
            return x, y, z
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return c * x + s * z, y, -s * x + c * z

    def intersect(self, origin, dx, dy, dz) -> np.ndarray:
        ox, oy, oz = self._to_local(*origin, translate=True)
        lx, ly, lz = self._to_local(dx, dy, dz, translate=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_near = np.full(dx.shape, -np.inf, np.float32)
            t_far = np.full(dx.shape, np.inf, np.float32)
            for o, d, h in ((ox, lx, self.half[0]), (oy, ly, self.half[1]), (oz, lz, self.half[2])):
                inv = 1.0 / d
                t1 = (-h - o) * inv
                t2 = (h - o) * inv
                np.maximum(t_near, np.minimum(t1, t2), out=t_near)
                np.minimum(t_far, np.maximum(t1, t2), out=t_far)
        if self.inside:
            return np.where(t_far > _NEAR, t_far, np.inf).astype(np.float32)
        hit = (t_near <= t_far) & (t_near > _NEAR)
        return np.where(hit, t_near, np.inf).astype(np.float32)

    def surface(self, px, py, pz, rng_offset: float) -> tuple[np.ndarray, np.ndarray]:
        lx, ly, lz = self._to_local(px, py, pz, translate=True)
        rx, ry, rz = lx / self.half[0], ly / self.half[1], lz / self.half[2]  # (N,) each; +-1 on the faces
        ax, ay, az = np.abs(rx), np.abs(ry), np.abs(rz)
        on_x = (ax >= ay) & (ax >= az)  # which face was hit: the largest relative coordinate
        on_y = ~on_x & (ay >= az)
        on_z = ~(on_x | on_y)
        flip = np.float32(-1.0 if self.inside else 1.0)  # a room's normals point inwards
        nx, ny, nz = on_x * np.sign(rx) * flip, on_y * np.sign(ry) * flip, on_z * np.sign(rz) * flip  # (N,) float32
        if self.yaw == 0.0:
            normal = (nx, ny, nz)
        else:
            c, s = math.cos(self.yaw), math.sin(self.yaw)
            normal = (c * nx - s * nz, ny, s * nx + c * nz)  # back to world axes
        # texture coordinates: the two in-face local axes, in metres; vertical faces use height as v
        u = np.where(on_x, lz, lx) + rng_offset
        v = np.where(on_y, lz, ly + self.half[1])
        if self.face_materials is None:
            return normal, self.material.shade(u, v)
        # face index 0..5 (-x, +x, -y, +y, -z, +z), then one shading call per distinct material
        positive = (on_x & (rx > 0)) | (on_y & (ry > 0)) | (on_z & (rz > 0))
        face = 2 * (on_y.view(np.int8) + 2 * on_z.view(np.int8)) + positive.view(np.int8)  # (N,) int8
        albedo = np.empty((3, len(u)), np.float32)
        materials: list[Material] = []  # distinct by identity, in face order
        for material in self.face_materials:
            if not any(material is known for known in materials):
                materials.append(material)
        group_of_face = np.array(
            [next(i for i, m in enumerate(materials) if m is f) for f in self.face_materials], np.int8
        )
        group = group_of_face[face]
        for index, material in enumerate(materials):
            points = np.flatnonzero(group == index)
            if len(points):
                shaded = material.shade(u[points], v[points])  # (3, n)
                for channel in range(3):  # per-channel scatter: much faster than albedo[:, points]
                    albedo[channel][points] = shaded[channel]
        return normal, albedo


@dataclass
class Sphere:
    center: np.ndarray
    radius: float
    material: Material

    def __post_init__(self) -> None:
        self.center = tuple(float(value) for value in self.center)
        self.radius = float(self.radius)

    def bounds(self) -> np.ndarray:
        center = np.array(self.center)
        return np.array([center - self.radius, center + self.radius])

    def intersect(self, origin, dx, dy, dz) -> np.ndarray:
        ox, oy, oz = (origin[i] - self.center[i] for i in range(3))
        a = dx * dx + dy * dy + dz * dz
        b = dx * ox + dy * oy + dz * oz
        c = ox * ox + oy * oy + oz * oz - self.radius**2
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / a
        return np.where((disc >= 0) & (t > _NEAR), t, np.inf).astype(np.float32)

    def surface(self, px, py, pz, rng_offset: float):
        normal = np.stack([px - self.center[0], py - self.center[1], pz - self.center[2]]) / self.radius  # (3, N)
        u = (np.arctan2(normal[0], normal[2]) + rng_offset) * self.radius
        v = np.arcsin(np.clip(normal[1], -1, 1)) * self.radius
        return normal, self.material.shade(u, v)


@dataclass
class Cylinder:
    """A vertical cylinder: axis at (x, z), from y0 to y1, with a top cap."""

    x: float
    z: float
    radius: float
    y0: float
    y1: float
    material: Material

    def __post_init__(self) -> None:
        self.x, self.z, self.radius = float(self.x), float(self.z), float(self.radius)
        self.y0, self.y1 = float(self.y0), float(self.y1)

    def bounds(self) -> np.ndarray:
        r = self.radius
        return np.array([[self.x - r, self.y0, self.z - r], [self.x + r, self.y1, self.z + r]])

    def intersect(self, origin, dx, dy, dz) -> np.ndarray:
        ox, oy, oz = origin[0] - self.x, origin[1], origin[2] - self.z
        a = dx * dx + dz * dz
        b = dx * ox + dz * oz
        c = ox * ox + oz * oz - self.radius**2
        disc = b * b - a * c
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (-b - np.sqrt(disc)) / a
            y = oy + t * dy
            side = (disc >= 0) & (t > _NEAR) & (y >= self.y0) & (y <= self.y1)
            t = np.where(side, t, np.inf)
            if oy > self.y1:  # camera above: the top cap can be seen
                t_cap = (self.y1 - oy) / dy
                cap = (t_cap > _NEAR) & ((ox + t_cap * dx) ** 2 + (oz + t_cap * dz) ** 2 <= self.radius**2)
                t = np.where(cap & (t_cap < t), t_cap, t)
        return t.astype(np.float32)

    def surface(self, px, py, pz, rng_offset: float):
        rx, rz = (px - self.x) / self.radius, (pz - self.z) / self.radius
        on_cap = (py >= self.y1 - 1e-3) & (rx * rx + rz * rz < 0.98)
        normal = np.stack([np.where(on_cap, 0.0, rx), on_cap.astype(np.float32), np.where(on_cap, 0.0, rz)])
        u = (np.arctan2(rx, rz) + rng_offset) * self.radius
        return normal, self.material.shade(u, py)


@dataclass
class GroundPlane:
    """The plane y = 0, seen from above; optionally a second material where |x - x_center| > half_width (sidewalks)."""

    material: Material
    outer_material: Material | None = None
    half_width: float = 0.0
    x_center: float = 0.0

    def bounds(self) -> None:
        return None

    def intersect(self, origin, dx, dy, dz) -> np.ndarray:
        with np.errstate(divide="ignore"):
            t = -origin[1] / dy
        # beyond _MAX_GROUND_DISTANCE the ground is horizon haze: counted as sky (and texture lookups stay in int32)
        return np.where((dy < 0) & (t > _NEAR) & (t < _MAX_GROUND_DISTANCE), t, np.inf).astype(np.float32)

    def surface(self, px, py, pz, rng_offset: float):
        zeros = np.zeros(len(px), np.float32)
        normal = (zeros, zeros + 1.0, zeros)
        u, v = px - self.x_center, pz + rng_offset
        if self.outer_material is None:
            return normal, self.material.shade(u, v)
        outer = np.abs(u) > self.half_width
        albedo = np.empty((3, len(px)), np.float32)
        for material, points in (
            (self.material, np.flatnonzero(~outer)),
            (self.outer_material, np.flatnonzero(outer)),
        ):
            shaded = material.shade(u[points], v[points])  # (3, n)
            for channel in range(3):
                albedo[channel][points] = shaded[channel]
        return normal, albedo


# ----------------------------------------------------------------------------------------------------------------------
# Scene families. Each returns (primitives, camera position (3,), yaw, pitch, roll, outdoor: bool)


def _scatter(rng, n, x_range, z_range, keep_clear: float, occupied: list, view_yaw: float | None = None) -> list:
    """Up to `n` ground positions (x, z) inside the ranges, at least `keep_clear` metres from the camera at the origin
    and from each other. With `view_yaw`, three in four are drawn inside the camera's horizontal view cone."""
    points: list = []
    max_distance = math.hypot(max(map(abs, x_range)), max(map(abs, z_range)))
    for _ in range(n * 6):
        if len(points) == n:
            break
        if view_yaw is not None and rng.random() < 0.75:
            angle, distance = view_yaw + rng.uniform(-0.6, 0.6), rng.uniform(keep_clear, max_distance)
            x, z = distance * math.sin(angle), distance * math.cos(angle)  # camera forward is (sin yaw, cos yaw)
            if not (x_range[0] <= x <= x_range[1] and z_range[0] <= z <= z_range[1]):
                continue
        else:
            x, z = rng.uniform(*x_range), rng.uniform(*z_range)
        taken = occupied + [(a, b, keep_clear) for a, b in points]
        if math.hypot(x, z) < keep_clear or any(math.hypot(x - a, z - b) < r for a, b, r in taken):
            continue
        points.append((x, z))
    return points


def _furniture(rng, x, z, floor_material) -> list:
    """A random piece of furniture standing on the floor at (x, z): table, cabinet, ball, lamp or stool."""
    kind = _pick(rng, ("table", "cabinet", "ball", "lamp", "stool", "cabinet"))
    material = _random_material(rng, ("plain", "planks", "stripes", "checker"), (0.1, 0.5))
    yaw = rng.uniform(0, math.pi)
    if kind == "table":
        w, d, h = rng.uniform(0.6, 1.8), rng.uniform(0.5, 1.0), rng.uniform(0.45, 0.8)
        parts = [Box(np.array([x, h - 0.02, z]), np.array([w / 2, 0.03, d / 2]), yaw, material)]
        c, s = math.cos(yaw), math.sin(yaw)
        for sx, sz in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
            lx, lz = sx * (w / 2 - 0.05), sz * (d / 2 - 0.05)
            parts.append(Cylinder(x + c * lx - s * lz, z + s * lx + c * lz, 0.025, 0.0, h - 0.05, material))
        return parts
    if kind == "cabinet":
        w, d, h = rng.uniform(0.4, 2.0), rng.uniform(0.3, 0.8), rng.uniform(0.4, 2.2)
        return [Box(np.array([x, h / 2, z]), np.array([w / 2, h / 2, d / 2]), yaw, material)]
    if kind == "ball":
        r = rng.uniform(0.1, 0.5)
        return [Sphere(np.array([x, r, z]), r, material)]
    if kind == "lamp":
        h = rng.uniform(1.0, 1.9)
        shade = Material(np.array([0.95, 0.9, 0.75], np.float32), np.array([0.9, 0.85, 0.7], np.float32))
        return [Cylinder(x, z, 0.02, 0.0, h, material), Cylinder(x, z, rng.uniform(0.12, 0.25), h, h + 0.25, shade)]
    r, h = rng.uniform(0.15, 0.35), rng.uniform(0.3, 0.6)
    return [Cylinder(x, z, r, 0.0, h, material)]


def _room(rng: np.random.Generator):
    width, depth, height = rng.uniform(3, 10), rng.uniform(3, 12), rng.uniform(2.4, 4.0)
    # the camera sits at the origin; the room is placed around it
    cam_x, cam_z = rng.uniform(-0.35, 0.35) * width, rng.uniform(-0.45, 0.1) * depth
    cam_h = rng.uniform(0.3, min(2.0, height - 0.3))
    center = np.array([-cam_x, height / 2, -cam_z])
    floor = _random_material(rng, ("planks", "checker", "plain", "grass"), (0.15, 0.8))
    wall = _random_material(rng, ("plain", "stripes", "bricks", "plain"), (0.2, 1.0))
    wall2 = _random_material(rng, ("plain", "stripes", "bricks"), (0.2, 1.0)) if rng.random() < 0.4 else wall
    ceiling = Material(np.full(3, rng.uniform(0.7, 0.95), np.float32), np.full(3, 0.6, np.float32), "plain", 1.0, 0.05)
    room = Box(
        center,
        np.array([width / 2, height / 2, depth / 2]),
        0.0,
        wall,
        inside=True,
        face_materials=(wall, wall2, floor, ceiling, wall, wall2),
    )
    parts: list = [room]
    x_range = (center[0] - width / 2 + 0.4, center[0] + width / 2 - 0.4)
    z_range = (center[2] - depth / 2 + 0.4, center[2] + depth / 2 - 0.4)
    occupied: list = []
    yaw = rng.uniform(-math.pi, math.pi) if rng.random() < 0.3 else rng.uniform(-0.6, 0.6)
    for x, z in _scatter(rng, int(rng.integers(4, 12)), x_range, z_range, 0.8, occupied, view_yaw=yaw):
        parts += _furniture(rng, x, z, floor)
        occupied.append((x, z, 0.8))
    for _ in range(int(rng.integers(0, 4))):  # pictures / windows on the walls
        w, h = rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.2)
        y = rng.uniform(h / 2 + 0.5, max(h / 2 + 0.6, height - h / 2 - 0.2))
        art = _random_material(rng, ("plain", "stripes", "checker", "grass"), (0.05, 0.4))
        side = int(rng.integers(4))
        if side < 2:
            x = center[0] + (1 if side else -1) * (width / 2 - 0.02)
            z = center[2] + rng.uniform(-0.4, 0.4) * depth
            parts.append(Box(np.array([x, y, z]), np.array([0.03, h / 2, w / 2]), 0.0, art))
        else:
            z = center[2] + (1 if side == 3 else -1) * (depth / 2 - 0.02)
            x = center[0] + rng.uniform(-0.4, 0.4) * width
            parts.append(Box(np.array([x, y, z]), np.array([w / 2, h / 2, 0.03]), 0.0, art))
    pitch = rng.uniform(-0.45, 0.15)
    return parts, np.array([0.0, cam_h, 0.0]), yaw, pitch, rng.uniform(-0.06, 0.06), False


def _street(rng: np.random.Generator):
    road_half = rng.uniform(3.0, 7.0)
    walk = rng.uniform(1.5, 4.0)
    asphalt = Material(
        np.full(3, rng.uniform(0.18, 0.35), np.float32), np.array([0.9, 0.9, 0.85], np.float32), "road", 1.0, 0.25
    )
    cam_x = rng.uniform(-road_half + 0.5, road_half - 0.5)
    pavement = _random_material(rng, ("checker", "plain", "bricks"), (0.3, 1.0))
    parts: list = [GroundPlane(asphalt, pavement, road_half, -cam_x)]  # sidewalks beyond the road's half width
    for side in (-1, 1):  # buildings
        z = rng.uniform(-30, -5)
        while z < 180:
            length = rng.uniform(8, 35)
            height, deep = rng.uniform(4, 45), rng.uniform(8, 20)
            setback = road_half + walk + rng.uniform(0, 3)
            cx = side * (setback + deep / 2) - cam_x
            facade = _random_material(rng, ("windows", "windows", "bricks", "plain"), (1.5, 3.5))
            facade.color2 = (facade.color * rng.uniform(0.1, 0.5)).astype(np.float32)
            if rng.random() > 0.15:
                parts.append(
                    Box(
                        np.array([cx, height / 2, z + length / 2]),
                        np.array([deep / 2, height / 2, length / 2]),
                        0.0,
                        facade,
                    )
                )
            z += length + rng.uniform(0, 6)
    for _ in range(int(rng.integers(1, 9))):  # cars: a body and a cabin
        lane = _pick(rng, (-0.5, 0.5)) * road_half
        x, z = lane + rng.uniform(-0.6, 0.6) - cam_x, rng.uniform(3, 90)
        length, width, height = rng.uniform(3.5, 5.0), rng.uniform(1.6, 2.0), rng.uniform(0.6, 0.9)
        paint = _random_material(rng, ("plain",), (0.5, 1.0))
        yaw = rng.uniform(-0.1, 0.1)
        parts.append(
            Box(np.array([x, 0.3 + height / 2, z]), np.array([width / 2, height / 2, length / 2]), yaw, paint)
        )
        glass = Material(np.array([0.15, 0.18, 0.22], np.float32), paint.color, "stripes", 0.8, 0.1)
        parts.append(
            Box(np.array([x, 0.3 + height + 0.3, z - 0.2]), np.array([width / 2 - 0.1, 0.3, length / 4]), yaw, glass)
        )
    bark = Material(
        np.array([0.35, 0.25, 0.15], np.float32), np.array([0.2, 0.15, 0.1], np.float32), "stripes", 0.1, 0.3
    )
    for _ in range(int(rng.integers(0, 8))):  # trees and poles on the sidewalks
        side = _pick(rng, (-1, 1))
        x, z = side * (road_half + walk * rng.uniform(0.2, 0.8)) - cam_x, rng.uniform(2, 120)
        if rng.random() < 0.5:
            h = rng.uniform(2, 5)
            parts.append(Cylinder(x, z, rng.uniform(0.1, 0.25), 0.0, h, bark))
            leaves = Material(
                _random_color(rng, 0.3, (0.15, 0.4)) * np.array([0.6, 1.0, 0.5], np.float32),
                np.array([0.1, 0.3, 0.05], np.float32),
                "grass",
                0.3,
                0.4,
            )
            parts.append(Sphere(np.array([x, h + rng.uniform(0.5, 1.5), z]), rng.uniform(1.0, 2.5), leaves))
        else:
            metal = Material(
                np.full(3, rng.uniform(0.3, 0.6), np.float32), np.full(3, 0.3, np.float32), "plain", 1.0, 0.1
            )
            parts.append(Cylinder(x, z, 0.08, 0.0, rng.uniform(3, 8), metal))
    height = rng.uniform(1.0, 3.0) if rng.random() < 0.8 else rng.uniform(3.0, 12.0)
    yaw = rng.uniform(-0.4, 0.4) if rng.random() < 0.85 else rng.uniform(-math.pi, math.pi)
    pitch = rng.uniform(-0.25, 0.1) - (0.2 if height > 3 else 0.0)
    return parts, np.array([0.0, height, 0.0]), yaw, pitch, rng.uniform(-0.04, 0.04), True


def _objects(rng: np.random.Generator):
    ground = _random_material(rng, ("grass", "checker", "grass", "plain"), (0.5, 3.0))
    if ground.pattern == "grass":
        ground.color = (ground.color * np.array([0.7, 1.0, 0.6])).astype(np.float32)
    parts: list = [GroundPlane(ground)]
    occupied: list = []
    max_distance = rng.uniform(10, 80)
    for x, z in _scatter(
        rng, int(rng.integers(4, 18)), (-max_distance, max_distance), (1.0, max_distance), 1.5, occupied
    ):
        size = rng.uniform(0.2, 1.0) * (1.0 + 0.05 * z)
        material = _random_material(rng, ("plain", "checker", "stripes", "bricks", "planks"), (0.1, 1.0))
        kind = rng.integers(3)
        lift = size * rng.uniform(1.0, 4.0) if rng.random() < 0.15 else 0.0  # a few floating objects
        if kind == 0:
            half = np.array([size * rng.uniform(0.3, 1.2), size * rng.uniform(0.3, 1.5), size * rng.uniform(0.3, 1.2)])
            parts.append(Box(np.array([x, half[1] + lift, z]), half, rng.uniform(0, math.pi), material))
        elif kind == 1:
            parts.append(Sphere(np.array([x, size + lift, z]), size, material))
        else:
            parts.append(
                Cylinder(x, z, size * rng.uniform(0.2, 0.7), lift, lift + size * rng.uniform(0.5, 3.0), material)
            )
        occupied.append((x, z, 1.5 * size))
    height = rng.uniform(0.3, 2.5) if rng.random() < 0.8 else rng.uniform(2.5, 15.0)
    pitch = rng.uniform(-0.35, 0.1) - (0.25 if height > 2.5 else 0.0)
    return parts, np.array([0.0, height, 0.0]), rng.uniform(-0.3, 0.3), pitch, rng.uniform(-0.05, 0.05), True


_SCENES = {"room": _room, "street": _street, "objects": _objects}


# ----------------------------------------------------------------------------------------------------------------------
# Rendering


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation (3, 3): roll about the optical axis, then pitch (positive looks up), then yaw."""
    cy, sy, cp, sp, cr, sr = (
        math.cos(yaw),
        math.sin(yaw),
        math.cos(pitch),
        math.sin(pitch),
        math.cos(roll),
        math.sin(roll),
    )
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


_CORNERS = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], np.float64)  # (8, 3) unit cube


def _screen_rect(bounds, origin, rotation, focal, height, width) -> tuple[int, int, int, int] | None:
    """Pixel rectangle (row0, row1, col0, col1) covering a world box's projection, or None when off-screen."""
    if bounds is None:
        return 0, height, 0, width
    lo, hi = bounds
    cam = (np.where(_CORNERS > 0, hi, lo) - origin) @ rotation  # (8, 3) corners in camera coordinates: R^T (p - o)
    depth = cam[:, 2]
    nearest, farthest = depth.min(), depth.max()
    if farthest <= _NEAR:
        return None
    if nearest <= _NEAR:
        return 0, height, 0, width
    projected = cam[:, :2] / depth[:, None]  # (8, 2) normalised image coordinates (x right, y up)
    (x_min, y_min), (x_max, y_max) = projected.min(axis=0), projected.max(axis=0)
    row0, row1 = (
        max(int(height / 2 - focal * y_max) - 1, 0),
        min(int(math.ceil(height / 2 - focal * y_min)) + 1, height),
    )
    col0, col1 = max(int(focal * x_min + width / 2) - 1, 0), min(int(math.ceil(focal * x_max + width / 2)) + 1, width)
    if row0 >= row1 or col0 >= col1:
        return None
    return row0, row1, col0, col1


def _shadow_casters_rect(primitive, sun, origin, rotation, focal, height, width):
    """Screen rectangle of the shadow an object casts on y = 0 along the sun direction (plus its own footprint)."""
    bounds = primitive.bounds()
    if bounds is None:
        return None
    lo, hi = bounds
    corners = lo + (hi - lo) * _CORNERS  # (8, 3)
    projected = corners - (corners[:, 1:2] / sun[1]) * sun[None, :]  # (8, 3) on the ground
    points = np.concatenate([corners, projected])
    return _screen_rect(np.array([points.min(0), points.max(0)]), origin, rotation, focal, height, width)


def render_scene(rng: np.random.Generator, config: SyntheticConfig) -> dict:
    """Render one random scene.

    Returns a dict with ``image`` (H, W, 3) uint8, ``depth`` (H, W) float32 z-depth in metres (0 on sky),
    ``sky_mask`` (H, W) bool, ``scene`` (str) and ``fov_deg`` (float).
    """
    height, width = config.height, config.width
    kind = _pick(rng, config.scene_kinds)
    primitives, origin, yaw, pitch, roll, outdoor = _SCENES[kind](rng)
    origin = tuple(float(value) for value in origin)
    fov = math.radians(rng.uniform(*config.fov_range_deg))
    focal = (width / 2) / math.tan(fov / 2)
    rotation = _rotation(yaw, pitch, roll)

    xs = ((np.arange(width, dtype=np.float32) + 0.5 - width / 2) / focal)[None, :]  # (1, W)
    ys = ((height / 2 - np.arange(height, dtype=np.float32) - 0.5) / focal)[:, None]  # (H, 1)
    rot = rotation.astype(np.float32)
    # world-space ray directions (H, W) per axis; the camera-frame optical component is 1, so t = z-depth
    dx = rot[0, 0] * xs + rot[0, 1] * ys + rot[0, 2]
    dy = rot[1, 0] * xs + rot[1, 1] * ys + rot[1, 2]
    dz = rot[2, 0] * xs + rot[2, 1] * ys + rot[2, 2]

    zbuf = np.full((height, width), np.inf, np.float32)
    owner = np.full((height, width), -1, np.int16)
    rects = []
    for index, primitive in enumerate(primitives):
        rect = _screen_rect(primitive.bounds(), origin, rotation, focal, height, width)
        rects.append(rect)
        if rect is None:
            continue
        r0, r1, c0, c1 = rect
        t = primitive.intersect(origin, dx[r0:r1, c0:c1], dy[r0:r1, c0:c1], dz[r0:r1, c0:c1])
        closer = t < zbuf[r0:r1, c0:c1]
        np.copyto(zbuf[r0:r1, c0:c1], t, where=closer)
        np.copyto(owner[r0:r1, c0:c1], np.int16(index), where=closer)

    sky = owner < 0
    with np.errstate(invalid="ignore"):
        # world-space hit points (H, W) per axis; inf/nan on sky, never read there
        hit_x, hit_y, hit_z = origin[0] + zbuf * dx, origin[1] + zbuf * dy, origin[2] + zbuf * dz
    spread = 0.6 if outdoor else 0.25  # indoors the light comes from above (ceiling lights): short shadows
    sun = np.array([rng.uniform(-spread, spread), rng.uniform(0.6, 1.0), rng.uniform(-spread, spread)])
    sun = tuple(float(value) for value in sun / np.linalg.norm(sun))
    ambient = rng.uniform(0.25, 0.5) if outdoor else rng.uniform(0.45, 0.7)
    light_color = np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.75, 1.0)], np.float32)
    planes = np.empty((3, height * width), np.float32)  # planar RGB, flat pixels (fast scatter)
    lit = np.ones(height * width, np.float32)  # 1 = sunlit, 0 in shadows
    hit_x, hit_y, hit_z = hit_x.ravel(), hit_y.ravel(), hit_z.ravel()
    if config.shadows:
        _cast_shadows(primitives, owner, (hit_x, hit_y, hit_z), sun, origin, rotation, focal, lit)

    for index, primitive in enumerate(primitives):
        rect = rects[index]
        if rect is None:
            continue
        flat = _flat_indices(owner, rect, index)
        if len(flat) == 0:
            continue
        normal, albedo = primitive.surface(hit_x[flat], hit_y[flat], hit_z[flat], index * 3.7)
        diffuse = np.clip(normal[0] * sun[0] + normal[1] * sun[1] + normal[2] * sun[2], 0.0, None) * lit[flat]
        sky_light = 0.8 + 0.2 * normal[1]  # hemisphere light: surfaces facing up get more ambient
        shading = ambient * sky_light + (1.0 - ambient) * diffuse  # (N,)
        for channel in range(3):
            planes[channel][flat] = albedo[channel] * (shading * light_color[channel])

    horizon = np.array([rng.uniform(0.6, 0.85), rng.uniform(0.7, 0.9), rng.uniform(0.85, 1.0)], np.float32)
    if sky.any():
        zenith = np.array([rng.uniform(0.1, 0.35), rng.uniform(0.3, 0.55), rng.uniform(0.6, 0.95)], np.float32)
        flat = np.flatnonzero(sky)
        ray_x, ray_y, ray_z = dx.ravel()[flat], dy.ravel()[flat], dz.ravel()[flat]
        blend = np.sqrt(np.clip(ray_y / np.sqrt(ray_x**2 + ray_y**2 + ray_z**2), 0.0, 1.0))  # (N,) by elevation
        plane = 1.0 / np.maximum(ray_y, 0.02)  # project onto a cloud layer
        clouds = _sample_noise(ray_x * plane * 8.0, ray_z * plane * 8.0, 1.0)
        cover = rng.uniform(0.0, 0.8)
        cloudiness = np.clip((clouds - (1 - cover)) * 3.0, 0, 1) * np.float32(rng.uniform(0.5, 1.0))
        for channel in range(3):
            color = horizon[channel] + (zenith[channel] - horizon[channel]) * blend
            planes[channel][flat] = color + (np.float32(0.95) - color) * cloudiness

    fog = outdoor and config.fog
    if fog:
        fog_distance = rng.uniform(80.0, 800.0)
        visibility = np.exp(np.where(sky, 0.0, zbuf).ravel() * np.float32(-1.0 / fog_distance))  # (H*W,)
    exposure = np.float32(rng.uniform(0.85, 1.2))
    grain = None
    if config.sensor_noise > 0:
        row, col = (int(value) for value in rng.integers(0, _NOISE_SIZE, 2))
        grain = _tiled_noise(height + row, width + col)[row:, col:]  # (H, W) fixed-pattern noise, random offset
        grain = ((grain - np.float32(0.5)) * np.float32(config.sensor_noise)).ravel()
    image = np.empty((height, width, 3), np.uint8)
    for channel in range(3):
        plane = planes[channel]
        if fog:
            plane = horizon[channel] + (plane - horizon[channel]) * visibility
        plane = plane * exposure
        if grain is not None:
            plane += grain
        plane = np.clip(plane, 0.0, 1.0)
        plane = np.float32(0.35 * 255) * plane + np.float32(0.65 * 255) * np.sqrt(plane)  # mild display gamma
        image[..., channel] = plane.reshape(height, width)  # (H, W); float -> uint8 truncation
    depth = np.where(sky, 0.0, zbuf).astype(np.float32)
    return {"image": image, "depth": depth, "sky_mask": sky, "scene": kind, "fov_deg": math.degrees(fov)}


@lru_cache(maxsize=8)
def _pixel_numbers(height: int, width: int) -> np.ndarray:
    """(H, W) int64 array of flat pixel indices row * W + col (read-only, cached per size)."""
    numbers = np.arange(height * width, dtype=np.int64).reshape(height, width)
    numbers.flags.writeable = False
    return numbers


def _flat_indices(owner: np.ndarray, rect: tuple[int, int, int, int], index: int) -> np.ndarray:
    """Flat (row * W + col) indices of the pixels owned by primitive `index` inside `rect`, (N,) int64."""
    r0, r1, c0, c1 = rect
    return _pixel_numbers(*owner.shape)[r0:r1, c0:c1][owner[r0:r1, c0:c1] == index]


@lru_cache(maxsize=8)
def _tiled_noise(height: int, width: int) -> np.ndarray:
    """The noise texture tiled to at least (height, width), float32."""
    reps = (-(-height // _NOISE_SIZE), -(-width // _NOISE_SIZE))
    return np.tile(_noise_texture(), reps)[:height, :width]


def _cast_shadows(primitives, owner, hits, sun, origin, rotation, focal, lit) -> None:
    """Zero `lit` ((H * W,), in place) on floor/ground pixels whose ray toward the sun hits an object.

    Only nearby objects cast shadows (within 40 m): far shadows are a few pixels and would cost a full test each.
    """
    height, width = owner.shape
    hit_x, hit_y, hit_z = hits
    receivers = [
        i for i, p in enumerate(primitives) if isinstance(p, GroundPlane) or (isinstance(p, Box) and p.inside)
    ]
    if not receivers:
        return
    receiving = (owner == receivers[0]) if len(receivers) == 1 else np.isin(owner, receivers)
    with np.errstate(invalid="ignore"):
        receiving &= (hit_y < 0.2).reshape(owner.shape)  # floor/ground only; walls and ceiling receive no shadows
    for index, primitive in enumerate(primitives):
        if index in receivers or isinstance(primitive, GroundPlane):
            continue
        if isinstance(primitive, Cylinder) and primitive.radius < 0.05:
            continue  # table legs, lamp stands: shadows of a pixel or two, not worth a test
        lo, hi = primitive.bounds()
        if (
            math.hypot(
                max(abs(lo[0] - origin[0]), abs(hi[0] - origin[0])),
                max(abs(lo[2] - origin[2]), abs(hi[2] - origin[2])),
            )
            > 40
        ):
            continue
        rect = _shadow_casters_rect(primitive, np.array(sun), origin, rotation, focal, height, width)
        if rect is None:
            continue
        flat = _flat_indices(receiving, rect, True)
        if len(flat) == 0:
            continue
        hit = _occluded(primitive, hit_x[flat], hit_y[flat], hit_z[flat], sun)
        lit[flat[hit]] = 0.0


def _occluded(primitive, px, py, pz, sun) -> np.ndarray:
    """Whether rays from points (N,) toward the sun (3 floats) hit `primitive` (shadow test; per-point origins)."""
    sx, sy, sz = sun
    if isinstance(primitive, Sphere):
        ox, oy, oz = px - primitive.center[0], py - primitive.center[1], pz - primitive.center[2]
        b = sx * ox + sy * oy + sz * oz
        c = ox * ox + oy * oy + oz * oz - primitive.radius**2
        return (b * b - c >= 0) & (b < 0)
    if isinstance(primitive, Cylinder):
        ox, oz = px - primitive.x, pz - primitive.z
        a = sx * sx + sz * sz
        b = sx * ox + sz * oz
        c = ox * ox + oz * oz - primitive.radius**2
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            root = np.sqrt(disc)
            t_in, t_out = (-b - root) / a, (-b + root) / a
        y_in, y_out = py + t_in * sy, py + t_out * sy
        return (
            (disc >= 0)
            & (t_out > 0)
            & (np.maximum(y_in, y_out) >= primitive.y0)
            & (np.minimum(y_in, y_out) <= primitive.y1)
        )
    # Box: slab test in the box frame with per-point origins and one direction
    ox, oy, oz = primitive._to_local(px, py, pz, translate=True)
    lx, ly, lz = primitive._to_local(sx, sy, sz, translate=False)
    t_near, t_far = np.full(px.shape, -np.inf, np.float32), np.full(px.shape, np.inf, np.float32)
    for o, d, h in ((ox, lx, primitive.half[0]), (oy, ly, primitive.half[1]), (oz, lz, primitive.half[2])):
        if abs(d) < 1e-9:
            t_far = np.where(np.abs(o) > h, -np.inf, t_far)
            continue
        t1, t2 = (-h - o) * (1.0 / d), (h - o) * (1.0 / d)
        t_near, t_far = np.maximum(t_near, np.minimum(t1, t2)), np.minimum(t_far, np.maximum(t1, t2))
    return (t_near <= t_far) & (t_far > 1e-3)


def render_sample(seed: int, index: int, shard: int = 0, config: SyntheticConfig | None = None) -> dict:
    """Render sample `index` of shard `shard` of stream `seed`: a pure function of its arguments (see `render_scene`).

    Adds ``id`` = ``"synthetic-{seed}-{shard}-{index}"``.
    """
    config = config or SyntheticConfig()
    rng = np.random.default_rng([int(seed), int(shard), int(index)])
    sample = render_scene(rng, config)
    sample["id"] = f"synthetic-{seed}-{shard}-{index}"
    return sample


def _index_generator(shards: list[int], seed: int, samples_per_shard: int | None):
    from itertools import count

    for shard in shards:
        indices = count() if samples_per_shard is None else range(samples_per_shard)
        for index in indices:
            yield {"id": f"synthetic-{seed}-{shard}-{index}", "seed": seed, "shard": shard, "index": index}


def _render_example(example: dict, config: SyntheticConfig) -> dict:
    from PIL import Image

    rng = np.random.default_rng([int(example["seed"]), int(example["shard"]), int(example["index"])])
    sample = render_scene(rng, config)
    return {
        "image": Image.fromarray(sample["image"]),
        "depth": sample["depth"],
        "sky_mask": sample["sky_mask"],
        "depth_kind": "depth",
        "scene": sample["scene"],
    }


def synthetic_stream(
    seed: int = 0,
    size: tuple[int, int] = (256, 256),
    num_shards: int = 8,
    samples_per_shard: int | None = None,
    config: SyntheticConfig | None = None,
):
    """A `datasets.IterableDataset` of procedural scenes with exact depth.

    Args:
        seed (`int`): stream seed; sample ``(shard, index)`` is always the same image for a given seed.
        size (`tuple[int, int]`): (height, width) in pixels; overrides `config`'s size.
        num_shards (`int`): independent sub-streams. `split_dataset_by_node` and DataLoader workers give each process
            whole shards when `num_shards` is a multiple of their number.
        samples_per_shard (`int`, *optional*): samples per shard; None = endless shards (then a single process only
            ever reads its first shard, which is fine: every shard is an independent endless stream).
        config (`SyntheticConfig`, *optional*): generator settings.

    Yields dicts: ``id`` (str), ``image`` (PIL RGB, H x W), ``depth`` ((H, W) float32 metres, 0 on sky),
    ``sky_mask`` ((H, W) bool), ``depth_kind`` ("depth"), ``scene`` (str), plus ``seed``/``shard``/``index`` (int).
    Rendering happens lazily in a `map`, so resuming from `state_dict()` skips samples without rendering them.
    """
    import datasets

    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards!r}")
    if samples_per_shard is not None and samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1 or None, got {samples_per_shard!r}")
    height, width = size
    base = config or SyntheticConfig()
    config = SyntheticConfig(
        height=int(height),
        width=int(width),
        scene_kinds=base.scene_kinds,
        fov_range_deg=base.fov_range_deg,
        fog=base.fog,
        shadows=base.shadows,
        sensor_noise=base.sensor_noise,
    )
    stream = datasets.IterableDataset.from_generator(
        _index_generator,
        gen_kwargs={"shards": list(range(num_shards)), "seed": int(seed), "samples_per_shard": samples_per_shard},
    )
    return stream.map(_render_example, fn_kwargs={"config": config})


def depth_to_color(depth: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Colour-map a depth map for viewing: (H, W) float -> (H, W, 3) uint8; near = bright, invalid = black."""
    import matplotlib

    valid = (depth > 0) & np.isfinite(depth) if valid is None else valid
    disparity = np.zeros_like(depth, dtype=np.float32)
    disparity[valid] = 1.0 / depth[valid]
    if valid.any():
        low, high = np.percentile(disparity[valid], [1, 99])
        disparity = np.clip((disparity - low) / max(high - low, 1e-8), 0, 1)
    rgb = matplotlib.colormaps["Spectral_r"](disparity)[..., :3]  # (H, W, 3)
    rgb[~valid] = 0
    return (rgb * 255).astype(np.uint8)


def save_grid(path: str, rows: int = 4, cols: int = 4, size: int = 160, seed: int = 0) -> None:
    """Write a picture grid of `rows` x `cols` samples, each an image with its colour-mapped depth to its right."""
    from PIL import Image

    config = SyntheticConfig(height=size, width=size)
    tile_w = 2 * size + 4
    canvas = np.full((rows * (size + 4), cols * (tile_w + 8), 3), 255, np.uint8)
    for k in range(rows * cols):
        sample = render_sample(seed, k, config=config)
        r, c = divmod(k, cols)
        y, x = r * (size + 4), c * (tile_w + 8)
        canvas[y : y + size, x : x + size] = sample["image"]
        canvas[y : y + size, x + size + 4 : x + 2 * size + 4] = depth_to_color(sample["depth"], sample["depth"] > 0)
    # a 256-colour palette keeps the docs picture small (~150 KB instead of ~570 KB)
    picture = Image.fromarray(canvas).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    picture.save(path, optimize=True)
    logger.info("wrote %s (%d samples, seed %d)", path, rows * cols, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", help="write a picture grid of samples to this path (e.g. docs/synthetic_grid.png)")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.grid:
        parser.error("nothing to do: pass --grid PATH")
    save_grid(args.grid, args.rows, args.cols, args.size, args.seed)


if __name__ == "__main__":
    main()
