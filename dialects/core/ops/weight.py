"""`mlacc.weight`."""

from ..._mlir import ext, ir
from ...base import AnyTensor, VerificationError, structure_problem
from ...types import tensor_info
from ..dialect import CoreOp


class WeightOp(CoreOp, name="weight"):
    """A named reference to a weight tensor that lives outside the IR.

    ``key`` is the weight's name (the model's state-dict name, e.g.
    ``layers.0.attn.wkv_a.weight``); the result type gives its shape and dtype. The IR holds
    no weight data, so a 671B-parameter model's graph stays small; the artifact's
    ``weights.safetensors`` (or a checkpoint on disk) supplies the data by name.
    """

    key: ir.StringAttr
    out: ext.Result[AnyTensor]

    def verify_invariants(self) -> bool:
        problem = structure_problem(self)
        if problem is not None:  # "" means IRDL reports it, right after this hook
            return not problem
        try:
            if not ir.StringAttr(self.attributes["key"]).value:
                raise VerificationError("attribute 'key' must not be empty")
            if tensor_info(self.out.type) is None:
                raise VerificationError(f"result must be a ranked tensor, got {self.out.type}")
        except VerificationError as err:
            self.location.emit_error(f"'{self.OPERATION_NAME}' op {err}")
            return False
        return True


def weight(key: str, type_: ir.Type, *, loc: ir.Location | None = None) -> ir.Value:
    """Builds `mlacc.weight` for the weight named `key` of type `type_`."""
    return WeightOp(ir.StringAttr.get(key), type_, loc=loc).result
