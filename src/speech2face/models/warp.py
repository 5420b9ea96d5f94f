"""A differentiable thin-plate-spline image warp in torch: content at source points moves to target points.

Points are in normalised image coordinates: (x, y) in [0, 1], x to the right, y down, a pixel's centre
at ((col + 0.5) / W, (row + 0.5) / H). `BORDER` points on the image's edge never move, so the warp is
local to the face (Cole et al.: "fixed zero-displacement points on the border"). Gradients flow to the image
and to both point sets (the decoder's landmark head learns through them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

REGULARISATION = 1e-4  # ridge on the spline: coincident landmarks (closed lips) stay solvable
COARSE = 32  # the spline is evaluated on at most a 32x32 grid (it is smooth), then interpolated bilinearly


def border_points(per_side: int = 5, device: torch.device | None = None, dtype: torch.dtype | None = None,
                  ) -> torch.Tensor:
    """(4 * (per_side - 1), 2) points on the edge of [0, 1]^2, corners included once."""
    t = torch.linspace(0, 1, per_side, device=device, dtype=dtype)
    zeros, ones = torch.zeros_like(t), torch.ones_like(t)
    edges = [torch.stack(p, dim=1)[:-1] for p in ((t, zeros), (ones, t), (t.flip(0), ones), (zeros, t.flip(0)))]
    return torch.cat(edges)


def _kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2 between (B, M, 2) and (B, N, 2) -> (B, M, N); 0 at r = 0 with a finite gradient."""
    squared = (a[:, :, None, :] - b[:, None, :, :]).pow(2).sum(-1)
    return squared * torch.log(squared.clamp_min(1e-12))


def tps_fit(control: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Spline weights (B, N + 3, 2) with f(control_i) ~= values_i; control, values (B, N, 2)."""
    batch, count, _ = control.shape
    ones = torch.ones(batch, count, 1, device=control.device, dtype=control.dtype)
    affine = torch.cat([ones, control], dim=2)  # (B, N, 3)
    eye = torch.eye(count, device=control.device, dtype=control.dtype)
    top = torch.cat([_kernel(control, control) + REGULARISATION * eye, affine], dim=2)
    bottom = torch.cat([affine.transpose(1, 2), control.new_zeros(batch, 3, 3)], dim=2)
    rhs = torch.cat([values, values.new_zeros(batch, 3, 2)], dim=1)
    matrix = torch.cat([top, bottom], dim=1)
    if torch.onnx.is_in_onnx_export():  # ONNX has no linear solver: elimination in plain tensor ops
        return solve_by_elimination(matrix, rhs)
    return torch.linalg.solve(matrix, rhs)


def solve_by_elimination(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """x with matrix @ x = rhs, (B, N, N) and (B, N, K): Gauss-Jordan with partial pivoting, written in
    ops every exporter knows (argmax, gather, arithmetic), unrolled over the N columns. The spline's
    system has a zero block, so pivoting is needed."""
    augmented = torch.cat([matrix, rhs], dim=2)
    count = matrix.shape[1]
    rows = torch.arange(count, device=matrix.device)
    for column in range(count):
        below = augmented[:, column:, column].abs()
        pivot = below.argmax(dim=1) + column  # (B,)
        # swap row `column` with row `pivot` via a permutation of row indices
        order = rows.expand(augmented.shape[0], -1).clone()
        order[:, column] = pivot
        order = torch.where(rows[None] == pivot[:, None], torch.full_like(order, column), order)
        augmented = torch.gather(augmented, 1, order[:, :, None].expand(-1, -1, augmented.shape[2]))
        pivot_row = augmented[:, column:column + 1] / augmented[:, column:column + 1, column:column + 1]
        factors = augmented[:, :, column:column + 1]
        augmented = augmented - factors * pivot_row
        augmented = torch.cat([augmented[:, :column], pivot_row, augmented[:, column + 1:]], dim=1)
    return augmented[:, :, count:]


def tps_apply(weights: torch.Tensor, control: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Evaluate the spline at points (B, M, 2) -> (B, M, 2)."""
    count = control.shape[1]
    ones = torch.ones(*points.shape[:2], 1, device=points.device, dtype=points.dtype)
    return _kernel(points, control) @ weights[:, :count] + torch.cat([ones, points], dim=2) @ weights[:, count:]


def warp_image(image: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """image (B, C, H, W); source, target (B, N, 2) -> (B, C, H, W) with what was at source now at target."""
    batch, _, height, width = image.shape
    fixed = border_points(device=image.device, dtype=source.dtype).expand(batch, -1, -1)
    control = torch.cat([target, fixed], dim=1)  # backward map: each output pixel asks where it came from
    weights = tps_fit(control, torch.cat([source, fixed], dim=1))
    rows, cols = min(height, COARSE), min(width, COARSE)
    y = (torch.linspace(0, height - 1, rows, device=image.device, dtype=source.dtype) + 0.5) / height
    x = (torch.linspace(0, width - 1, cols, device=image.device, dtype=source.dtype) + 0.5) / width
    grid = torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1).reshape(1, -1, 2).expand(batch, -1, -1)
    mapped = tps_apply(weights, control, grid).reshape(batch, rows, cols, 2)
    if (rows, cols) != (height, width):  # the coarse samples sit on pixels 0, ..., H-1 spread evenly
        mapped = F.interpolate(mapped.permute(0, 3, 1, 2), size=(height, width), mode="bilinear",
                               align_corners=True).permute(0, 2, 3, 1)
    return F.grid_sample(image, mapped * 2 - 1, mode="bilinear", padding_mode="border", align_corners=False)
