// Draws the layout of a synthetic street scene: camera, road cross-section, facade blocks,
// skyline, and the objects standing in the street. Everything is in world metres; the same
// distribution serves every domain (appearance is decided later, in synth_render.c).
#include <math.h>
#include <string.h>
#include "data/synth_internal.h"

// Footprints already taken, to keep objects from overlapping on the ground.
typedef struct { float x0, x1, z0, z1; } footprint;
typedef struct { int n; footprint f[SCENE_MAX_OBJECTS]; } footprints;

static int place(footprints *fp, float x0, float x1, float z0, float z1) {
    for (int i = 0; i < fp->n; i++) {
        const footprint *o = &fp->f[i];
        if (x0 < o->x1 && o->x0 < x1 && z0 < o->z1 && o->z0 < z1) return 0;
    }
    if (fp->n < SCENE_MAX_OBJECTS) fp->f[fp->n++] = (footprint){x0, x1, z0, z1};
    return 1;
}

static scene_object *add_object(scene *sc, int kind, float X, float Z, float width, float height,
                                float length, uint32_t var) {
    if (sc->nobj >= SCENE_MAX_OBJECTS) return NULL;
    scene_object *o = &sc->obj[sc->nobj++];
    *o = (scene_object){kind, X, Z, width, height, length, 0, var};
    return o;
}

// Facade blocks of one side, from near to far.
static void gen_blocks(scene *sc, rng_stream *r, int side) {
    float z = rng_uniform(r, 0.0f, 4.0f);
    int n = 0;
    float p_building = rng_uniform(r, 0.35f, 0.9f);   // some streets are leafy, some urban
    while (z < sc->zfar && n < SCENE_MAX_BLOCKS) {
        scene_block *b = &sc->block[side][n++];
        float u = rng_uniform(r, 0, 1);
        b->kind = u < p_building ? BLK_BUILDING : u < p_building + 0.6f * (1 - p_building) ? BLK_VEGETATION : BLK_GAP;
        float len = b->kind == BLK_BUILDING ? rng_uniform(r, 8, 35) : b->kind == BLK_VEGETATION ? rng_uniform(r, 5, 25) : rng_uniform(r, 3, 12);
        b->z0 = z;
        b->z1 = z + len;
        b->height = b->kind == BLK_BUILDING ? rng_uniform(r, 6, 30) : rng_uniform(r, 3, 12);
        b->depth = rng_uniform(r, 8, 25);
        b->var = rng_next_u32(r);
        z = b->z1;
    }
    if (n > 0) sc->block[side][n - 1].z1 = maxf(sc->block[side][n - 1].z1, sc->zfar);
    sc->nblock[side] = n;
}

static void gen_low(scene *sc, rng_stream *r, int side) {
    int n = rng_chance(r, 0.45f) ? 1 + rng_below(r, 3) : 0;
    float z = rng_uniform(r, 1, 12);
    int k = 0;
    for (int i = 0; i < n && k < SCENE_MAX_LOW; i++) {
        scene_low *l = &sc->low[side][k++];
        l->kind = rng_below(r, 3);
        l->z0 = z;
        l->z1 = z + rng_uniform(r, 5, 40);
        l->height = l->kind == LOW_WALL ? rng_uniform(r, 0.6f, 2.6f) : l->kind == LOW_FENCE ? rng_uniform(r, 0.9f, 2.0f) : rng_uniform(r, 0.7f, 1.6f);
        l->var = rng_next_u32(r);
        z = l->z1 + rng_uniform(r, 3, 25);
    }
    sc->nlow[side] = k;
}

static void gen_skyline(scene *sc, rng_stream *r) {
    float x = -0.05f;
    int n = 0;
    while (x < 1.05f && n < SCENE_MAX_SKYLINE) {
        scene_skyline *s = &sc->skyline[n];
        s->x0 = x;
        s->x1 = x + rng_uniform(r, 0.02f, 0.12f);
        float u = rng_uniform(r, 0, 1);
        s->kind = u < 0.6f ? BLK_BUILDING : BLK_VEGETATION;
        s->height = s->kind == BLK_BUILDING ? rng_uniform(r, 5, 40) : rng_uniform(r, 4, 14);
        s->var = rng_next_u32(r);
        x = s->x1;
        if (u < 0.92f) n++;   // the rest are gaps showing sky
    }
    sc->nskyline = n;
}

// Poles, lamps, traffic lights and signs along one curb; street trees beside them.
static void gen_street_furniture(scene *sc, rng_stream *r, footprints *fp, int side) {
    float sgn = side ? 1.0f : -1.0f;
    float curb = side ? sc->road_r : sc->road_l;
    float walk = side ? sc->walk_r : sc->walk_l;
    float width = fabsf(walk - curb);
    float z = rng_uniform(r, 3, 18);
    while (z < minf(sc->zfar, 90)) {
        float u = rng_uniform(r, 0, 1);
        int kind = u < 0.3f ? OBJ_LAMP : u < 0.5f ? OBJ_TRAFFIC_LIGHT : u < 0.85f ? OBJ_SIGN : OBJ_POLE;
        float X = curb + sgn * rng_uniform(r, 0.3f, 0.6f);
        float height = kind == OBJ_LAMP ? rng_uniform(r, 6, 9) : kind == OBJ_SIGN ? rng_uniform(r, 2.6f, 3.6f) : rng_uniform(r, 3.5f, 5.5f);
        if (place(fp, X - 0.3f, X + 0.3f, z - 0.3f, z + 0.3f)) {
            scene_object *o = add_object(sc, kind, X, z, rng_uniform(r, 0.1f, 0.22f), height, 0, rng_next_u32(r));
            if (o) o->side_view = side ? -1 : 1;   // arms and lights reach over the road
        }
        z += rng_uniform(r, 8, 35);
    }
    if (rng_chance(r, 0.5f) && width > 1.2f) {
        z = rng_uniform(r, 3, 12);
        float spacing = rng_uniform(r, 7, 16);
        while (z < 70) {
            float X = curb + sgn * minf(width * 0.5f, rng_uniform(r, 0.8f, 1.6f));
            float height = rng_uniform(r, 4, 9);
            if (place(fp, X - 0.4f, X + 0.4f, z - 0.4f, z + 0.4f))
                add_object(sc, OBJ_TREE, X, z, rng_uniform(r, 2.5f, 5.5f), height, 0, rng_next_u32(r));
            z += spacing * rng_uniform(r, 0.8f, 1.25f);
        }
    }
}

static void vehicle_size(int kind, rng_stream *r, float *w, float *h, float *len) {
    switch (kind) {
    case OBJ_TRUCK: *w = rng_uniform(r, 2.2f, 2.5f); *h = rng_uniform(r, 2.6f, 3.8f); *len = rng_uniform(r, 6, 10); break;
    case OBJ_BUS: *w = 2.5f; *h = rng_uniform(r, 3.0f, 3.4f); *len = rng_uniform(r, 10, 13); break;
    case OBJ_TRAIN: *w = 2.6f; *h = 3.5f; *len = rng_uniform(r, 20, 30); break;
    default: *w = rng_uniform(r, 1.65f, 1.95f); *h = rng_uniform(r, 1.35f, 1.7f); *len = rng_uniform(r, 3.8f, 4.9f);
    }
}

static void gen_vehicles(scene *sc, rng_stream *r, footprints *fp) {
    // parked along each curb
    for (int side = 0; side < 2; side++) {
        if (!rng_chance(r, 0.6f)) continue;
        float z = rng_uniform(r, 2, 10);
        while (z < 60) {
            int kind = rng_chance(r, 0.04f) ? OBJ_TRUCK : OBJ_CAR;
            float w, h, len;
            vehicle_size(kind, r, &w, &h, &len);
            float X = side ? sc->road_r - 0.2f - w / 2 : sc->road_l + 0.2f + w / 2;
            if (rng_chance(r, 0.75f) && place(fp, X - w / 2, X + w / 2, z, z + len))
                add_object(sc, kind, X, z, w, h, len, rng_next_u32(r));
            z += len + rng_uniform(r, 0.5f, 9);
        }
    }
    // moving, one lane at a time
    for (int lane = 0; lane < sc->lanes; lane++) {
        float cx = sc->road_l + (lane + 0.5f) * sc->lane_w;
        int n = rng_below(r, 4);
        for (int i = 0; i < n; i++) {
            float u = rng_uniform(r, 0, 1);
            int kind = u < 0.82f ? OBJ_CAR : u < 0.87f ? OBJ_TRUCK : u < 0.95f ? OBJ_BUS : OBJ_TRAIN;
            float w, h, len;
            vehicle_size(kind, r, &w, &h, &len);
            float X = cx + rng_uniform(r, -0.3f, 0.3f);
            float zmin = fabsf(cx) < sc->lane_w * 0.6f ? 7.0f : 3.0f;   // nothing inside the ego car
            float z = rng_uniform(r, zmin, 70);
            if (place(fp, X - w / 2 - 0.2f, X + w / 2 + 0.2f, z - 1, z + len + 1))
                add_object(sc, kind, X, z, w, h, len, rng_next_u32(r));
        }
    }
}

static void gen_people(scene *sc, rng_stream *r, footprints *fp) {
    int n = rng_below(r, 10);
    if (rng_chance(r, 0.15f)) n += 6 + rng_below(r, 8);   // a busy street now and then
    for (int i = 0; i < n; i++) {
        float X, z;
        int side = rng_below(r, 2);
        float curb = side ? sc->road_r : sc->road_l, walk = side ? sc->walk_r : sc->walk_l;
        float face = side ? sc->face_r : sc->face_l;
        if (sc->cross_z1 > sc->cross_z0 && rng_chance(r, 0.25f)) {   // on the zebra crossing
            X = rng_uniform(r, sc->road_l, sc->road_r);
            z = rng_uniform(r, sc->cross_z0, sc->cross_z1);
        } else {
            float a = curb, b = fabsf(walk - curb) > 0.8f ? walk : face;
            X = rng_uniform(r, minf(a, b), maxf(a, b));
            z = rng_uniform(r, 2.5f, 45);
        }
        float height = rng_uniform(r, 1.5f, 1.95f);
        if (rng_chance(r, 0.08f)) height *= 0.65f;   // children
        if (place(fp, X - 0.25f, X + 0.25f, z - 0.25f, z + 0.25f)) {
            scene_object *o = add_object(sc, OBJ_PERSON, X, z, height * 0.27f, height, 0.3f, rng_next_u32(r));
            if (o) o->side_view = rng_chance(r, 0.5f) ? (rng_chance(r, 0.5f) ? 1 : -1) : 0;
        }
    }
    // riders near the road edges, a few parked two-wheelers on the sidewalks
    int nr = rng_chance(r, 0.55f) ? 1 + rng_below(r, 3) : 0;
    for (int i = 0; i < nr; i++) {
        int moto = rng_chance(r, 0.3f);
        int side = rng_below(r, 2);
        float X = side ? sc->road_r - rng_uniform(r, 0.6f, 1.5f) : sc->road_l + rng_uniform(r, 0.6f, 1.5f);
        float z = rng_uniform(r, 4, 40);
        int crossing = rng_chance(r, 0.35f);
        if (crossing) X = rng_uniform(r, sc->road_l + 1, sc->road_r - 1);
        float len = moto ? 2.0f : 1.7f;
        if (place(fp, X - (crossing ? len / 2 : 0.4f), X + (crossing ? len / 2 : 0.4f), z, z + (crossing ? 0.6f : len))) {
            scene_object *o = add_object(sc, moto ? OBJ_RIDER_MOTORCYCLE : OBJ_RIDER_BICYCLE, X, z,
                                         moto ? 0.8f : 0.6f, rng_uniform(r, 1.6f, 1.9f), len, rng_next_u32(r));
            if (o) o->side_view = crossing ? (rng_chance(r, 0.5f) ? 1 : -1) : 0;
        }
    }
    int np = rng_chance(r, 0.35f) ? 1 + rng_below(r, 3) : 0;
    for (int i = 0; i < np; i++) {
        int moto = rng_chance(r, 0.3f);
        int side = rng_below(r, 2);
        float curb = side ? sc->road_r : sc->road_l, walk = side ? sc->walk_r : sc->walk_l;
        float X = rng_uniform(r, minf(curb, walk), maxf(curb, walk));
        float z = rng_uniform(r, 3, 30);
        float len = moto ? 2.0f : 1.7f;
        if (place(fp, X - len / 2, X + len / 2, z - 0.3f, z + 0.3f)) {
            scene_object *o = add_object(sc, moto ? OBJ_MOTORCYCLE : OBJ_BICYCLE, X, z, 0.6f,
                                         moto ? 1.1f : 1.0f, len, rng_next_u32(r));
            if (o) o->side_view = rng_chance(r, 0.5f) ? 1 : -1;
        }
    }
}

static void gen_overhead(scene *sc, rng_stream *r, footprints *fp) {
    if (!rng_chance(r, 0.25f)) return;
    float z = rng_uniform(r, 12, 50);
    float X = sc->road_r + 0.5f;
    if (place(fp, X - 0.3f, X + 0.3f, z - 0.3f, z + 0.3f)) {
        scene_object *o = add_object(sc, OBJ_OVERHEAD_LIGHT, X, z, 0.25f, rng_uniform(r, 5.5f, 7),
                                     minf(sc->road_r - sc->road_l - 1.5f, rng_uniform(r, 3, 8)), rng_next_u32(r));
        if (o) o->side_view = -1;
    }
}

// Far to near: the painter's order of the rasteriser. The key is the nearest depth.
static void sort_objects(scene *sc) {
    for (int i = 1; i < sc->nobj; i++) {
        scene_object o = sc->obj[i];
        int j = i - 1;
        while (j >= 0 && sc->obj[j].Z < o.Z) { sc->obj[j + 1] = sc->obj[j]; j--; }
        sc->obj[j + 1] = o;
    }
}

void scene_generate(scene *sc, rng_stream *r, int h, int w) {
    memset(sc, 0, sizeof *sc);
    sc->f = (float)w * rng_uniform(r, 0.85f, 1.25f);
    sc->vx = (float)w * (0.5f + rng_uniform(r, -0.08f, 0.08f));
    sc->vy = (float)h * rng_uniform(r, 0.36f, 0.48f);
    sc->cam_h = rng_uniform(r, 1.2f, 1.7f);
    sc->zfar = rng_uniform(r, 70, 140);

    float u = rng_uniform(r, 0, 1);
    sc->lanes = u < 0.2f ? 1 : u < 0.65f ? 2 : u < 0.9f ? 3 : 4;
    sc->lane_w = rng_uniform(r, 2.8f, 3.6f);
    float parking_l = rng_chance(r, 0.4f) ? 2.2f : 0, parking_r = rng_chance(r, 0.4f) ? 2.2f : 0;
    int ego = rng_below(r, sc->lanes);
    sc->road_l = -(ego + 0.5f) * sc->lane_w - parking_l + rng_uniform(r, -0.4f, 0.4f);
    sc->road_r = sc->road_l + sc->lanes * sc->lane_w + parking_l + parking_r;
    sc->lane_w = (sc->road_r - sc->road_l) / sc->lanes;   // parking widens the outer lanes
    float walk_l = rng_chance(r, 0.1f) ? 0 : rng_uniform(r, 1.5f, 5.5f);
    float walk_r = rng_chance(r, 0.1f) ? 0 : rng_uniform(r, 1.5f, 5.5f);
    sc->walk_l = sc->road_l - walk_l;
    sc->walk_r = sc->road_r + walk_r;
    sc->face_l = sc->walk_l - (rng_chance(r, 0.5f) ? rng_uniform(r, 0.5f, 7) : 0.05f);
    sc->face_r = sc->walk_r + (rng_chance(r, 0.5f) ? rng_uniform(r, 0.5f, 7) : 0.05f);
    sc->edge_lines = rng_chance(r, 0.5f);
    if (rng_chance(r, 0.3f)) {
        sc->cross_z0 = rng_uniform(r, 6, 30);
        sc->cross_z1 = sc->cross_z0 + rng_uniform(r, 3, 5);
    }
    sc->hood = rng_chance(r, 0.4f) ? rng_uniform(r, 0.04f, 0.09f) : 0;
    sc->var = rng_next_u32(r);

    for (int side = 0; side < 2; side++) gen_blocks(sc, r, side);
    for (int side = 0; side < 2; side++) gen_low(sc, r, side);
    gen_skyline(sc, r);

    footprints fp = {0};
    gen_overhead(sc, r, &fp);
    for (int side = 0; side < 2; side++) gen_street_furniture(sc, r, &fp, side);
    gen_vehicles(sc, r, &fp);
    gen_people(sc, r, &fp);
    sort_objects(sc);
}
