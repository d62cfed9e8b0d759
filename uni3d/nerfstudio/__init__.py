"""uni3d inside nerfstudio: ``ns-train uni3d-*`` methods with the live viewer, and ``uni3d view``.

The only importers of nerfstudio in uni3d live here; install them with ``pip install 'uni3d[nerfstudio]'``.
This ``__init__`` imports nothing from nerfstudio, so ``uni3d view`` can say what to install when it is missing.

    cameras.py      uni3d orbit cameras <-> nerfstudio cameras and rays (uni3d is y-up, the viewer z-up)
    datamanager.py  random training views from uni3d's CameraSampler; a turntable for the viewer to draw
    model.py        a nerfstudio Model around the uni3d NeRF scene, with uni3d's guidance loss
    methods.py      the ``nerfstudio.method_configs`` entry points: uni3d-sds, uni3d-vsd, uni3d-uni-instruct[-rkl|-jeffreys|-js]
    view.py         ``uni3d view RUN_DIR``: a finished ``uni3d generate`` run as a nerfstudio output, in the viewer
"""
