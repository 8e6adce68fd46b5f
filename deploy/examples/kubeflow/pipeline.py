"""A Kubeflow pipeline that compresses a model with the Caldera component.

    pip install kfp==2.9.0
    python pipeline.py            # writes caldera_pipeline.yaml; upload it in the KFP UI

The component maps calderactl's exit codes itself (see the component file), so
the task gets no set_retry. The pipeline run id is the request id: a re-run of a
failed pod re-attaches to the coordinator job it already created.
"""
import pathlib

from kfp import compiler, components, dsl

HERE = pathlib.Path(__file__).resolve().parent
caldera_compress = components.load_component_from_file(
    str(HERE / "caldera-compress-component.yaml"))


@dsl.pipeline(name="caldera-compress", description="CALDERA compression of one model")
def caldera_pipeline(model: str, calibration: str, out: str, rank: int = 64):
    caldera_compress(model=model, calibration=calibration, out=out, rank=rank,
                     request_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)


if __name__ == "__main__":
    compiler.Compiler().compile(caldera_pipeline, str(HERE / "caldera_pipeline.yaml"))
