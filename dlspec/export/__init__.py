"""Export to ONNX, verified before it is reported.

Layout: `exporter` (the network → a checked, verified .onnx file; checkpoints), `axes`
(the dynamic axes: which, the sizes compared, the outputs' axis names), `verify`
(onnx.checker, shape inference, ONNX Runtime against PyTorch), `metadata` (what the file
carries for deployment, written through `dlspec.contract`, which defines every key; also what a
run folder keeps for it in data.json). Importing this
package imports neither torch nor onnx; `metadata` imports neither.
"""
