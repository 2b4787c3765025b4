// Shared between the synthetic-scene files: the scene description (synth_scene.c draws it from
// the sample key, independently of the domain's looks), the domain styles (synth_domains.c) and
// the rasteriser (synth_raster.c, synth_render.c).
//
// World frame: X to the right, Y up, Z forward (metres); the camera sits at (0, cam_h, 0)
// looking along +Z. A world point projects to x = vx + f X / Z, y = vy + f (cam_h - Y) / Z.
#pragma once
#include <stdint.h>
#include "data/rng_stream.h"
#include "data/synth.h"

// min/max/clamp that compile to single instructions (libm's fminf/fmaxf are calls, NaN-aware).
static inline float minf(float a, float b) { return a < b ? a : b; }
static inline float maxf(float a, float b) { return a > b ? a : b; }
static inline uint8_t clamp_u8(float v) { return (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v); }

// Train ids (Cityscapes order).
enum {
    C_ROAD, C_SIDEWALK, C_BUILDING, C_WALL, C_FENCE, C_POLE, C_LIGHT, C_SIGN, C_VEGETATION,
    C_TERRAIN, C_SKY, C_PERSON, C_RIDER, C_CAR, C_TRUCK, C_BUS, C_TRAIN, C_MOTORCYCLE,
    C_BICYCLE, C_IGNORE = 255
};

// ---------------------------------------------------------------------------------------
// Scene (layout only)

enum { BLK_BUILDING, BLK_VEGETATION, BLK_GAP };                       // facade blocks
enum { LOW_WALL, LOW_FENCE, LOW_HEDGE };                              // low structures
enum {                                                                // objects
    OBJ_POLE, OBJ_LAMP, OBJ_TRAFFIC_LIGHT, OBJ_SIGN, OBJ_OVERHEAD_LIGHT, OBJ_TREE,
    OBJ_CAR, OBJ_TRUCK, OBJ_BUS, OBJ_TRAIN, OBJ_PERSON, OBJ_RIDER_BICYCLE,
    OBJ_RIDER_MOTORCYCLE, OBJ_BICYCLE, OBJ_MOTORCYCLE
};

#define SCENE_MAX_BLOCKS 48
#define SCENE_MAX_LOW 6
#define SCENE_MAX_SKYLINE 48
#define SCENE_MAX_OBJECTS 128

typedef struct {
    float z0, z1;     // extent along the street
    int kind;         // BLK_*
    float height;     // metres
    float depth;      // how far the block reaches away from the street (side wall)
    uint32_t var;     // per-block random bits (colour, window grid, canopy shape)
} scene_block;

typedef struct {
    float z0, z1, height;
    int kind;         // LOW_*
    uint32_t var;
} scene_low;

typedef struct {
    float x0, x1;     // screen columns as fractions of the width
    float height;     // metres, at Z = zfar
    int kind;         // BLK_BUILDING or BLK_VEGETATION
    uint32_t var;
} scene_skyline;

typedef struct {
    int kind;         // OBJ_*
    float X, Z;       // ground position: centre (X) and nearest point (Z)
    float width, height, length;
    int side_view;    // two-wheelers and people: 1 = seen from the side, facing +X or -X (sign)
    uint32_t var;
} scene_object;

typedef struct {
    // camera
    float f, vx, vy, cam_h, zfar;
    // street cross-section (X of each boundary, left to right)
    float face_l, walk_l, road_l, road_r, walk_r, face_r;
    int lanes;
    float lane_w;
    int edge_lines;             // solid lines along the road edges
    float cross_z0, cross_z1;   // zebra crossing extent (cross_z1 <= cross_z0: none)
    int nblock[2];
    scene_block block[2][SCENE_MAX_BLOCKS];   // [0] left, [1] right, sorted by z0
    int nlow[2];
    scene_low low[2][SCENE_MAX_LOW];
    int nskyline;
    scene_skyline skyline[SCENE_MAX_SKYLINE];
    int nobj;
    scene_object obj[SCENE_MAX_OBJECTS];      // sorted far to near
    float hood;                 // ego bonnet height as a fraction of the image height (0: none)
    uint32_t var;               // scene-wide random bits
} scene;

// Draws the layout of one sample for an h x w image.
void scene_generate(scene *sc, rng_stream *rng, int h, int w);

// ---------------------------------------------------------------------------------------
// Domains (appearance only)

typedef struct {
    const char *name;
    const char *summary;
    int painted;              // flat pastel palette (otherwise the realistic one)
    float sky_top[3], sky_horizon[3];
    float cloud;              // sky texture amplitude
    float tex;                // surface texture amplitude multiplier
    float side_shade;         // brightness of faces turned away from the light
    float fog_density[2];     // exponential fog, 1/m (range drawn per sample)
    float fog_color[3];
    float exposure[2];        // grading: multiplier range drawn per sample
    float contrast, gamma, saturation;
    float tint[3];
    float noise;              // sensor noise std (grey levels)
    int blur;                 // 3x3 box-blur passes
    float lit_windows;        // fraction of lit windows
    int lights;               // vehicle lights and lamps glow
    float rain;               // rain streaks per 1000 pixels
    float wet;                // road wetness: darkening and sky reflection
    int posterize;            // levels per channel (0: off)
    int outlines;             // ink outlines at label boundaries
} synth_domain;

extern const synth_domain SYNTH_DOMAINS[];
extern const int SYNTH_NUM_DOMAINS;

// Base colour of a surface of class `cls` for this domain; `var` picks among the class's
// variants (car paints, facade colours, clothes...).
void domain_color(float rgb[3], const synth_domain *d, int cls, uint32_t var);

// ---------------------------------------------------------------------------------------
// Rasteriser (synth_raster.c). A pixel is covered when its centre (x + 0.5, y + 0.5) is inside.

#define RASTER_MAX_GLOWS 256

typedef struct { float x, y, radius, rgb[3]; } raster_glow;

typedef struct {
    uint8_t *rgb, *lab;       // (h, w, 3), (h, w)
    int h, w;
    const synth_domain *dom;
    float fog_density;        // this sample's fog
    int tox, toy;             // this sample's texture offsets
    int nglow;                // light sources added after shading (dusk, rain)
    raster_glow glow[RASTER_MAX_GLOWS];
} raster;

typedef struct {
    int cls;                  // label written; -1 paints colour only
    float rgb[3];             // base colour
    float tex;                // texture amplitude, fraction of the colour
    int grain;                // 1: fine grain texture, 0: smooth blotches
} material;

// A material prepared for one depth (fog applied): colour = c0 + k * texel.
typedef struct {
    int cls;
    int multiply;             // 1: multiply existing colour by c0/255 (shadows), label untouched
    float c0[3], k[3];
    const int8_t *tex;        // 256 x 256 texture
} shader;

void shader_prepare(shader *s, const raster *r, const material *m, float z);
void shader_shadow(shader *s, float factor);
void shade_pixel(raster *r, const shader *s, int x, int y);
void fill_span(raster *r, const shader *s, int y, int x0, int x1);      // columns [x0, x1)
void fill_vspan(raster *r, const shader *s, int x, int y0, int y1);     // rows [y0, y1)
void fill_rect(raster *r, const shader *s, float x0, float y0, float x1, float y1);
// Convex polygon, n <= 8 vertices (x, y pairs), either winding.
void fill_poly(raster *r, const shader *s, const float *xy, int n);
void fill_ellipse(raster *r, const shader *s, float cx, float cy, float rx, float ry);
// Ellipse minus the inner ellipse (rx - t, ry - t): wheels seen from the side.
void fill_ring(raster *r, const shader *s, float cx, float cy, float rx, float ry, float t);
// Thick segment (at least one pixel wide).
void fill_line(raster *r, const shader *s, float x0, float y0, float x1, float y1, float thick);
void add_glow(raster *r, float x, float y, float radius, const float rgb[3]);

// Draws the whole scene, then the domain's image-wide effects (synth_effects.c).
void render_scene(raster *r, const scene *sc, rng_stream *rng);
void render_effects(raster *r, rng_stream *rng);
