# The six images of the walk, in order: `docker buildx bake` builds them all (BuildKit runs the
# model stages they share once), `docker buildx bake onnx_image` one of them.
# Written by `python -m scripts.images.bake` from scripts/variants.py, as make build-all builds them.

group "default" {
  targets = ["naive_image", "slim_image", "multi_stage_build", "layered_image", "distroless_image", "onnx_image"]
}

target "naive_image" {
  context    = "."
  dockerfile = "naive_image/Dockerfile"
  tags       = ["bert-classifier:naive_image"]
}

target "slim_image" {
  context    = "."
  dockerfile = "slim_image/Dockerfile"
  tags       = ["bert-classifier:slim_image"]
}

target "multi_stage_build" {
  context    = "."
  dockerfile = "multi_stage_build/Dockerfile"
  tags       = ["bert-classifier:multi_stage_build"]
}

target "layered_image" {
  context    = "."
  dockerfile = "layered_image/Dockerfile"
  tags       = ["bert-classifier:layered_image"]
}

target "distroless_image" {
  context    = "."
  dockerfile = "distroless_image/Dockerfile"
  tags       = ["bert-classifier:distroless_image"]
}

target "onnx_image" {
  context    = "."
  dockerfile = "onnx_image/Dockerfile"
  tags       = ["bert-classifier:onnx_image"]
}
