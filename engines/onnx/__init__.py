"""The in-process engine: ONNX Runtime GenAI models from local folders.

``engine`` (the Engine, in the app's process), ``worker`` (the child process that generates) and
``models`` (which model folders exist, and provisioning them).
"""
