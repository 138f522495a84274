/* The stub libgdal that bundle-libs builds when the Caffe tree never names GDAL.
 *
 * Debian's libopencv_imgcodecs links GDAL (a ~120 MB closure: ICU data, PROJ, GEOS,
 * poppler) for NITF and DTED files alone. The stub defines the functions the image's
 * libraries take from GDAL (derived each build: gdal-stub-symbols.h, written by
 * bundle-libs) and opens nothing; the first GDALOpen* call says why.
 *
 *   gcc -shared -fPIC -DSONAME='"libgdal.so.32"' -I DIR_OF_SYMBOLS gdal-stub.c
 */
#include <stdio.h>

#ifndef SONAME
#define SONAME "libgdal.so"
#endif

static void say(const char *name) {
    static int said;
    if (said++) return;
    fprintf(stderr, "caffebox: %s: this image's " SONAME " is a stub, so OpenCV cannot read"
            " NITF or DTED files (or any file with IMREAD_LOAD_GDAL). To use GDAL, remove"
            " /opt/caffe/lib/deps/" SONAME " and install GDAL.\n", name);
}

#define OPENS(sym) long sym(void) { say(#sym); return 0; }
#define NOTHING(sym) long sym(void) { return 0; }
#include "gdal-stub-symbols.h"
