"""Export: a speechkd or transformers checkpoint for a deployment engine (CTranslate2 / faster-whisper).

`export_ctranslate2(model, output_dir, quantization)` writes it.
"""

from speechkd.export.ctranslate2 import export_ctranslate2

__all__ = ["export_ctranslate2"]
