"""The MuJoCo tabletop pushing scene: MJCF generation, stepping, rendering, state I/O.

:class:`PushSim` is the bare simulator with no gymnasium around it. The gymnasium env
(:mod:`foresight.envs.push.env`), and through it the data collector and the oracle, drive
the same ``PushSim``, so the physics, the camera and the action scaling exist once.

Coordinates: metres, table surface at z = 0, table centre at the origin. The camera looks
straight down; image columns grow with +x and image rows grow with -y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from foresight.config import OMIT_IF_NONE
from foresight.envs.gl import load_triton_first, render_help
from foresight.envs.push.scene import (
    FIXTURE_COLORS,
    HEADLIGHT_AMBIENT,
    HEADLIGHT_DIFFUSE,
    ObjectSpec,
    SceneDistribution,
)
from foresight.errors import ConfigError, RenderError

# Before mujoco, whose GL libraries can bring in an LLVM that triton's then crashes on.
load_triton_first()

import mujoco  # noqa: E402

#: Raw simulator state stored in datasets and restored by the oracle: time, qpos, qvel,
#: actuator activations (the pusher's position target) and controls.
STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION


def _default_objects() -> tuple[ObjectSpec, ...]:
    return (
        ObjectSpec("red_box", "box", rgba=(0.85, 0.1, 0.1, 1.0)),
        ObjectSpec("green_cylinder", "cylinder", rgba=(0.1, 0.7, 0.15, 1.0)),
        ObjectSpec("blue_box", "box", rgba=(0.1, 0.25, 0.9, 1.0)),
    )


#: Space between the pusher's workspace and the walls (m). The pusher's servo target stays in
#: the workspace; the servo can overshoot it a little where a push ends at its edge, and the
#: walls stop the pusher centre at most this far outside.
WALL_GAP = 0.015


@dataclass(frozen=True)
class PushConfig:
    """Scene and control settings of the pushing environment (``configs/env/push.yaml``).

    Attributes:
        image_size: Rendered frames are ``image_size x image_size`` RGB.
        objects: Every object in the scene; an episode activates some of them and parks
            the rest outside the table, out of view. Unused when ``scene`` is set.
        num_objects: Inclusive range of active objects in a random (untasked) episode; with
            ``scene`` set, each episode draws ``num_objects[1]`` objects.
        max_step: Pusher displacement (m) for an action of magnitude 1 along an axis.
        workspace: The pusher centre stays within ``[-workspace, workspace]^2``.
        spawn_extent: Objects (and goals) are placed within ``[-spawn_extent, spawn_extent]^2``.
        min_separation: Minimum distance between object centres at reset (m).
        pusher_radius: Radius of the cylindrical pusher (m).
        friction: Sliding friction of table, objects and walls.
        timestep: Physics timestep (s).
        frame_skip: Physics steps per env step (one action).
        camera_height: Height of the top-down camera above the table (m).
        view_half_extent: Half the width of the table area the camera sees (m).
        scene: Draw every episode's objects from this distribution (None: the fixed
            ``objects``); the drawn objects are recorded per episode in the dataset.
    """

    image_size: int = 64
    objects: tuple[ObjectSpec, ...] = field(default_factory=_default_objects)
    num_objects: tuple[int, int] = (1, 3)
    max_step: float = 0.03
    workspace: float = 0.25
    spawn_extent: float = 0.18
    min_separation: float = 0.1
    pusher_radius: float = 0.02
    friction: float = 0.5
    timestep: float = 0.005
    frame_skip: int = 20
    camera_height: float = 0.8
    view_half_extent: float = 0.29
    scene: SceneDistribution | None = field(default=None, metadata=OMIT_IF_NONE)

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ConfigError(f"image_size must be at least 8, got {self.image_size}")
        if not self.objects:
            raise ConfigError("the scene needs at least one object")
        names = [o.name for o in self.objects]
        if len(set(names)) != len(names):
            raise ConfigError(f"object names must be unique, got {names}")
        lo, hi = self.num_objects
        slots = len(self.objects) if self.scene is None else hi
        if not 1 <= lo <= hi <= slots:
            raise ConfigError(f"num_objects {list(self.num_objects)} must lie within [1, {slots}]")
        if self.frame_skip < 2:
            raise ConfigError("frame_skip must be at least 2")

    def with_objects(self, objects: tuple[ObjectSpec, ...]) -> PushConfig:
        """This config with a fixed set of (e.g. drawn) objects and no distribution.

        ``num_objects`` is capped at the number of objects (a task may draw fewer).
        """
        lo, hi = self.num_objects
        k = len(objects)
        return replace(
            self, objects=tuple(objects), scene=None, num_objects=(min(lo, k), min(hi, k))
        )


def _object_xml(spec: ObjectSpec, index: int, friction: float) -> str:
    x, y = parked_xy(index)
    mu = spec.friction if spec.friction is not None else friction
    rgba = " ".join(f"{c:g}" for c in spec.rgba)
    common = f'rgba="{rgba}" friction="{mu} 0.005 0.0001" group="1"'
    if spec.shape == "cylinder":
        geoms = [f'<geom name="{spec.name}" type="cylinder" size="{spec.size} {spec.height}" '
                 f'mass="{spec.mass}" {common}/>']  # fmt: skip
    else:
        boxes = spec.boxes()
        area = sum(hx * hy for _, _, hx, hy in boxes)
        geoms = []
        for j, (bx, by, hx, hy) in enumerate(boxes):
            # Two-part shapes share the mass by area, so the body's inertia is that of the shape.
            name = spec.name if j == 0 else f"{spec.name}_{j}"
            pos = f' pos="{bx:g} {by:g} 0"' if len(boxes) > 1 else ""
            mass = spec.mass * hx * hy / area
            geoms.append(
                f'<geom name="{name}" type="box"{pos} size="{hx:g} {hy:g} {spec.height}" '
                f'mass="{mass:g}" {common}/>'
            )
    body = "\n      ".join(geoms)
    return f"""
    <body name="{spec.name}" pos="{x} {y} {spec.height}">
      <freejoint name="{spec.name}_joint"/>
      {body}
    </body>"""


def parked_xy(index: int) -> tuple[float, float]:
    """Where inactive object ``index`` waits: on the floor, outside the walls and the view."""
    return (1.0 + 0.3 * index, 1.0)


def build_xml(config: PushConfig) -> str:
    """MJCF of the scene described by ``config``.

    Rendering is set up for speed (no shadows, no multisampling, an offscreen buffer the
    size of the image); lighting is an even headlight so colour masks stay reliable.
    """
    size = config.image_size
    wall = config.workspace + config.pusher_radius + WALL_GAP
    fovy = math.degrees(2 * math.atan(config.view_half_extent / config.camera_height))
    objects = "".join(_object_xml(o, i, config.friction) for i, o in enumerate(config.objects))
    table, pusher, wall_rgb = (" ".join(f"{c:g}" for c in rgb) for rgb in FIXTURE_COLORS)
    walls = "".join(
        f'<geom name="wall_{n}" type="box" pos="{px} {py} 0.02" size="{sx} {sy} 0.02" '
        f'rgba="{wall_rgb} 1" friction="{config.friction} 0.005 0.0001"/>'
        for n, (px, py, sx, sy) in enumerate(
            [
                (wall + 0.01, 0, 0.01, wall + 0.02),
                (-wall - 0.01, 0, 0.01, wall + 0.02),
                (0, wall + 0.01, wall + 0.02, 0.01),
                (0, -wall - 0.01, wall + 0.02, 0.01),
            ]
        )
    )
    ws = config.workspace
    r = config.pusher_radius
    ambient = " ".join([f"{HEADLIGHT_AMBIENT:g}"] * 3)
    diffuse = " ".join([f"{HEADLIGHT_DIFFUSE:g}"] * 3)
    return f"""
<mujoco model="foresight_push">
  <option timestep="{config.timestep}" integrator="implicitfast"/>
  <visual>
    <global offwidth="{size}" offheight="{size}"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="{ambient}" diffuse="{diffuse}" specular="0 0 0"/>
    <map znear="0.05" zfar="3"/>
  </visual>
  <worldbody>
    <camera name="top" pos="0 0 {config.camera_height}" fovy="{fovy:.6f}"/>
    <geom name="table" type="plane" size="3 3 0.1" rgba="{table} 1"
          friction="{config.friction} 0.005 0.0001"/>
    {walls}
    <body name="pusher" pos="0 0 0.03">
      <joint name="pusher_x" type="slide" axis="1 0 0"/>
      <joint name="pusher_y" type="slide" axis="0 1 0"/>
      <geom name="pusher" type="cylinder" size="{r} 0.025" rgba="{pusher} 1" mass="1"
            friction="0.2 0.005 0.0001" group="2"/>
    </body>{objects}
  </worldbody>
  <actuator>
    <!-- The action sets a velocity that MuJoCo integrates into a position target, so the
         pusher moves smoothly within a step with no Python in the physics loop. A stiff,
         critically damped servo makes one action move the pusher the advertised distance. -->
    <intvelocity name="pusher_x" joint="pusher_x" kp="10000" kv="200"
                 actrange="{-ws} {ws}"/>
    <intvelocity name="pusher_y" joint="pusher_y" kp="10000" kv="200"
                 actrange="{-ws} {ws}"/>
  </actuator>
</mujoco>
"""


class PushSim:
    """The simulator: one MuJoCo model, its data, and one lazily created renderer.

    Args:
        config: Scene settings.

    Attributes:
        num_objects: ``K``, the number of objects in the scene (active or parked).
        state_size: Length of the raw state vector of :meth:`get_state`.
    """

    def __init__(self, config: PushConfig) -> None:
        self.config = config
        self.model = mujoco.MjModel.from_xml_string(build_xml(config))
        self.data = mujoco.MjData(self.model)
        self.num_objects = len(config.objects)
        self.state_size = mujoco.mj_stateSize(self.model, STATE_SPEC)
        self._obj_qpos = np.array(
            [self.model.jnt_qposadr[self.model.joint(f"{o.name}_joint").id] for o in config.objects]
        )
        self._obj_qvel = np.array(
            [self.model.jnt_dofadr[self.model.joint(f"{o.name}_joint").id] for o in config.objects]
        )
        self._heights = np.array([o.height for o in config.objects])
        self._ramp = max(1, round(0.6 * config.frame_skip))
        self._renderer: mujoco.Renderer | None = None
        self._show_all = mujoco.MjvOption()
        self._hide_pusher = mujoco.MjvOption()
        self._hide_pusher.geomgroup[2] = 0
        mujoco.mj_forward(self.model, self.data)

    # ----------------------------------------------------------------------------- physics
    def apply_action(self, action: np.ndarray) -> None:
        """Move the pusher by ``clip(action, -1, 1) * max_step`` metres, simulating contacts.

        Args:
            action: ``(2,)`` Δx, Δy in [-1, 1].
        """
        cfg = self.config
        delta = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0) * cfg.max_step
        # Move during the first 60% of the step, then let the servo settle, so that the pusher
        # ends each step where the action said (an unsettled servo silently shortens steps).
        self.data.ctrl[:] = delta / (self._ramp * cfg.timestep)
        mujoco.mj_step(self.model, self.data, self._ramp)
        self.data.ctrl[:] = 0.0
        mujoco.mj_step(self.model, self.data, cfg.frame_skip - self._ramp)
        # mj_step leaves positions of the *previous* substep in the derived quantities that
        # rendering reads; recompute them so frames match the state (and re-rendering it).
        mujoco.mj_forward(self.model, self.data)

    def set_layout(
        self,
        pusher_xy: np.ndarray,
        object_xy: np.ndarray,
        object_yaw: np.ndarray,
        active: np.ndarray,
    ) -> None:
        """Place the pusher and objects at rest; inactive objects are parked out of view.

        Args:
            pusher_xy: ``(2,)`` pusher centre.
            object_xy: ``(K, 2)`` object centres (ignored for inactive objects).
            object_yaw: ``(K,)`` rotations about z (rad).
            active: ``(K,)`` bool, which objects are on the table.
        """
        mujoco.mj_resetData(self.model, self.data)
        d = self.data
        d.qpos[0:2] = pusher_xy
        d.act[:] = pusher_xy
        for k in range(self.num_objects):
            adr = self._obj_qpos[k]
            xy = object_xy[k] if active[k] else parked_xy(k)
            yaw = float(object_yaw[k])
            d.qpos[adr : adr + 3] = (xy[0], xy[1], self._heights[k])
            d.qpos[adr + 3 : adr + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        mujoco.mj_forward(self.model, d)

    def get_state(self) -> np.ndarray:
        """The full integration state, ``(state_size,)`` float64; restores bit-exactly."""
        state = np.empty(self.state_size, dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, state, STATE_SPEC)
        return state

    def set_state(self, state: np.ndarray) -> None:
        """Restore a state from :meth:`get_state`."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (self.state_size,):
            raise ValueError(f"state must have shape ({self.state_size},), got {state.shape}")
        mujoco.mj_setState(self.model, self.data, state, STATE_SPEC)
        mujoco.mj_forward(self.model, self.data)

    @property
    def pusher_xy(self) -> np.ndarray:
        """``(2,)`` pusher centre."""
        return self.data.qpos[0:2].copy()

    @property
    def object_pos(self) -> np.ndarray:
        """``(K, 3)`` object centres (parked objects included)."""
        return np.stack([self.data.qpos[a : a + 3] for a in self._obj_qpos]).copy()

    # ---------------------------------------------------------------------------- rendering
    def render(self, hide_pusher: bool = False) -> np.ndarray:
        """Render the top camera.

        Args:
            hide_pusher: Leave the pusher out (goal images show only the objects).

        Returns:
            ``(H, W, 3)`` uint8 frame.
        """
        if self._renderer is None:
            size = self.config.image_size
            try:
                self._renderer = mujoco.Renderer(self.model, size, size)
            except Exception as err:  # mujoco raises several types, all meaning "no GL"
                raise RenderError(render_help(f"{type(err).__name__}: {err}")) from err
        option = self._hide_pusher if hide_pusher else self._show_all
        self._renderer.update_scene(self.data, camera="top", scene_option=option)
        return self._renderer.render()

    def world_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """Map table coordinates to (row, col) pixel coordinates of the top camera.

        Args:
            xy: ``(..., 2)`` points on the table (m).

        Returns:
            ``(..., 2)`` float (row, col); exact for points on the table plane.
        """
        xy = np.asarray(xy, dtype=np.float64)
        half = self.config.view_half_extent
        size = self.config.image_size
        col = (xy[..., 0] + half) / (2 * half) * size - 0.5
        row = (half - xy[..., 1]) / (2 * half) * size - 0.5
        return np.stack([row, col], axis=-1)

    def close(self) -> None:
        """Release the renderer's GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
