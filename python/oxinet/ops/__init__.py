"""Functional ops on NumPy arrays: arrays in, arrays out.

Each forward op that has parameters to learn comes with a ``*_backward``. Argument
names and meanings follow ``torch.nn.functional`` / ``torchvision.ops`` where those
have the op. float32 is the default dtype and float64 is kept; other dtypes raise
``TypeError`` naming the argument.
"""

from oxinet.ops.linalg import gemm, matmul
from oxinet.ops import boxes
from oxinet.ops.boxes import (
    batched_nms, box_area, box_convert, box_iou, clip_boxes_to_image, elementwise_box_iou,
    elementwise_generalized_box_iou, elementwise_generalized_box_iou_backward, generalized_box_iou,
    generalized_box_iou_backward, nms, remove_small_boxes, roi_align,
    roi_align_backward, roi_pool, roi_pool_backward, soft_nms,
)

__all__ = ["gemm", "matmul"]
__all__ += ["boxes"] + boxes.__all__
