# Builds the project's Cython extension in place (make -C lib).
import numpy as np
from setuptools import setup
from setuptools.extension import Extension
from Cython.Build import cythonize

ext_args = {
    'include_dirs': [np.get_include()],
    'extra_compile_args': ['-Wno-unused-function'],
}

print 'building the Cython extensions with', ', '.join(ext_args.keys())
for key, value in ext_args.iteritems():
    print '  %s: %s' % (key, value)

setup(
    name='oldproject',
    ext_modules=cythonize([Extension('geometry.iou', ['geometry/iou.pyx'], **ext_args)]),
)
