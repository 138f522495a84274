#!/bin/sh
# The classic Caffe data path, end to end, from the repo root: every line is what you type.
# (tests/test_beyond_training_image.py runs these very lines.)
set -e
caffebox python examples/imagefolder/prepare.py
caffebox run -- convert_imageset --shuffle examples/imagefolder/images/ examples/imagefolder/train.txt examples/imagefolder/train_lmdb
caffebox run -- convert_imageset examples/imagefolder/images/ examples/imagefolder/val.txt examples/imagefolder/val_lmdb
caffebox run -- compute_image_mean examples/imagefolder/train_lmdb examples/imagefolder/mean.binaryproto
caffebox train examples/imagefolder/solver.prototxt
caffebox train examples/imagefolder/solver_imagelist.prototxt
caffebox run -- caffe test -model examples/imagefolder/net.prototxt -weights snapshots/imagefolder_iter_1500.caffemodel -iterations 3
caffebox python "examples/imagefolder/mean_to_npy.py examples/imagefolder/mean.binaryproto examples/imagefolder/mean.npy"
caffebox run -- classify.py --model_def examples/imagefolder/deploy.prototxt --pretrained_model snapshots/imagefolder_iter_1500.caffemodel --images_dim 8,8 --center_only --mean_file examples/imagefolder/mean.npy --input_scale 0.00390625 examples/imagefolder/images/val/0000.png examples/imagefolder/one.npy
caffebox run -- classify.py --model_def examples/imagefolder/deploy.prototxt --pretrained_model snapshots/imagefolder_iter_1500.caffemodel --images_dim 8,8 --center_only --mean_file examples/imagefolder/mean.npy --input_scale 0.00390625 examples/imagefolder/val_images.npy examples/imagefolder/predictions.npy
caffebox run -- draw_net.py examples/imagefolder/net.prototxt examples/imagefolder/net.png
caffebox run -- sh -c "parse_log.py snapshots/imagefolder.runs/*/train.log examples/imagefolder"
caffebox time examples/imagefolder/net.prototxt --iterations 20 --csv examples/imagefolder/time.csv
