// Renders a scene (synth_scene.c) in a domain's looks: sky, ground with markings, skyline,
// facades with windows, low walls and fences, then the objects far to near (painter's
// order), then the ego bonnet. Labels are written together with the colours, so they match
// pixel for pixel. Image-wide effects (glows, rain, blur, grading, noise) are synth_effects.c.
#include <math.h>
#include "data/synth_internal.h"


static inline float px(const scene *sc, float X, float Z) { return sc->vx + sc->f * X / Z; }
static inline float py(const scene *sc, float Y, float Z) { return sc->vy + sc->f * (sc->cam_h - Y) / Z; }

// A small integer hash for shape details (window lights, canopy bumps): a pure function of
// the bits it is given, like every other draw.
static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16; x *= 0x7FEB352Du;
    x ^= x >> 15; x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}
static inline float hash01(uint32_t a, uint32_t b) { return (float)(mix32(a ^ mix32(b + 0x9E3779B9u)) >> 8) * (1.0f / 16777216.0f); }

// Smooth 1-D noise in [0, 1] (canopy and skyline silhouettes).
static float bumps(float t, uint32_t var) {
    float fl = floorf(t);
    int i = (int)fl;
    float u = t - fl;
    u = u * u * (3 - 2 * u);
    float a = hash01(var, (uint32_t)i), b = hash01(var, (uint32_t)(i + 1));
    return a + (b - a) * u;
}

static material mat_class(const raster *r, int cls, uint32_t var, float tex, int grain) {
    material m = {cls, {0, 0, 0}, tex, grain};
    domain_color(m.rgb, r->dom, cls, var);
    return m;
}

static material mat_rgb(int cls, float red, float green, float blue, float tex, int grain) {
    material m = {cls, {red, green, blue}, tex, grain};
    return m;
}

static material mat_scaled(material m, float k) {
    for (int c = 0; c < 3; c++) m.rgb[c] = minf(255.0f, m.rgb[c] * k);
    return m;
}

static shader shade(const raster *r, const material *m, float z) {
    shader s;
    shader_prepare(&s, r, m, z);
    return s;
}

// ---------------------------------------------------------------------------------------
// Sky and ground

static int sky_rows(const scene *sc, int h) {
    float n = floorf(sc->vy - 0.5f) + 1;   // rows whose centre is at or above the horizon
    return n < 0 ? 0 : n > (float)h ? h : (int)n;
}

static void render_sky(raster *r, const scene *sc) {
    const synth_domain *d = r->dom;
    int n = sky_rows(sc, r->h);
    for (int y = 0; y < n; y++) {
        float t = ((float)y + 0.5f) / maxf(sc->vy, 1.0f);
        t = t * sqrtf(t);
        material m = mat_rgb(C_SKY, 0, 0, 0, d->cloud, 0);
        for (int c = 0; c < 3; c++) m.rgb[c] = d->sky_top[c] + (d->sky_horizon[c] - d->sky_top[c]) * t;
        shader s = shade(r, &m, 0);
        fill_span(r, &s, y, 0, r->w);
    }
}

typedef struct {
    material road, walk[2], curb, terrain, marking;
} ground_mats;

static void ground_span(raster *r, const scene *sc, const material *m, float Z, int y, float X0, float X1) {
    int x0 = (int)maxf(0, minf((float)r->w, ceilf(px(sc, X0, Z) - 0.5f)));
    int x1 = (int)maxf(0, minf((float)r->w, ceilf(px(sc, X1, Z) - 0.5f)));
    if (x1 <= x0) return;
    shader s = shade(r, m, Z);
    fill_span(r, &s, y, x0, x1);
}

static void render_ground(raster *r, const scene *sc, const ground_mats *g) {
    const synth_domain *d = r->dom;
    float wide = 1e4f;
    float phase = (float)(sc->var & 1023) / 100.0f;
    for (int y = sky_rows(sc, r->h); y < r->h; y++) {
        float dy = (float)y + 0.5f - sc->vy;
        float Z = minf(sc->f * sc->cam_h / dy, 3000.0f);
        material road = g->road;
        if (d->wet > 0) {   // wet asphalt: darker, mirroring the horizon sky at grazing angles
            float refl = d->wet * 0.6f * expf(-4.0f * dy / maxf(1.0f, (float)r->h - sc->vy));
            for (int c = 0; c < 3; c++)
                road.rgb[c] = road.rgb[c] * (1 - 0.45f * d->wet) * (1 - refl) + d->sky_horizon[c] * refl;
        }
        ground_span(r, sc, &g->terrain, Z, y, -wide, sc->walk_l);
        ground_span(r, sc, &g->walk[0], Z, y, sc->walk_l, sc->road_l);
        ground_span(r, sc, &road, Z, y, sc->road_l, sc->road_r);
        ground_span(r, sc, &g->walk[1], Z, y, sc->road_r, sc->walk_r);
        ground_span(r, sc, &g->terrain, Z, y, sc->walk_r, wide);
        if (sc->walk_l < sc->road_l) ground_span(r, sc, &g->curb, Z, y, sc->road_l - 0.2f, sc->road_l);
        if (sc->walk_r > sc->road_r) ground_span(r, sc, &g->curb, Z, y, sc->road_r, sc->road_r + 0.2f);
        // markings (road class, paint colour) where they are at least a third of a pixel wide
        if (sc->f * 0.12f / Z < 0.35f) continue;
        if (fmodf(Z + phase, 9.0f) < 3.5f)
            for (int k = 1; k < sc->lanes; k++) {
                float X = sc->road_l + k * sc->lane_w;
                ground_span(r, sc, &g->marking, Z, y, X - 0.06f, X + 0.06f);
            }
        if (sc->edge_lines) {
            ground_span(r, sc, &g->marking, Z, y, sc->road_l + 0.25f, sc->road_l + 0.4f);
            ground_span(r, sc, &g->marking, Z, y, sc->road_r - 0.4f, sc->road_r - 0.25f);
        }
        if (Z >= sc->cross_z0 && Z < sc->cross_z1)
            for (float X = sc->road_l + 0.5f; X + 0.5f < sc->road_r; X += 1.0f)
                ground_span(r, sc, &g->marking, Z, y, X, X + 0.5f);
    }
}

static void render_skyline(raster *r, const scene *sc) {
    float Z = sc->zfar, ybot = py(sc, 0, Z) + 0.5f;
    for (int i = 0; i < sc->nskyline; i++) {
        const scene_skyline *k = &sc->skyline[i];
        int cls = k->kind == BLK_BUILDING ? C_BUILDING : C_VEGETATION;
        material m = mat_class(r, cls, k->var, 0.3f, 0);
        shader s = shade(r, &m, Z);
        int x0 = (int)maxf(0, ceilf(k->x0 * r->w - 0.5f)), x1 = (int)minf((float)r->w, ceilf(k->x1 * r->w - 0.5f));
        for (int x = x0; x < x1; x++) {
            float hgt = k->height;
            if (cls == C_VEGETATION) hgt *= 0.6f + 0.4f * bumps((float)x * 8.0f / r->w, k->var);
            float ytop = py(sc, hgt, Z);
            fill_vspan(r, &s, x, (int)ceilf(ytop - 0.5f), (int)ceilf(ybot - 0.5f));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Facades, seen column by column: the facade plane X = Xf meets column x at depth Z(x).

static void render_block(raster *r, const scene *sc, const scene_block *b, float Xf) {
    const synth_domain *d = r->dom;
    int cls = b->kind == BLK_BUILDING ? C_BUILDING : C_VEGETATION;
    material wall = mat_class(r, cls, b->var, b->kind == BLK_BUILDING ? 0.25f : 0.45f, 0);
    material glass = d->painted ? mat_rgb(C_BUILDING, 90, 110, 160, 0.05f, 0) : mat_rgb(C_BUILDING, 45, 55, 68, 0.2f, 0);
    material lit = mat_rgb(C_BUILDING, 255, 205, 130, 0.1f, 0);
    uint32_t v = b->var;
    float fh = 2.8f + 1.0f * (float)(v & 255) / 255.0f;                 // floor height
    float sp = 2.5f + 2.0f * (float)((v >> 8) & 255) / 255.0f;          // window spacing
    float ww = sp * (0.35f + 0.3f * (float)((v >> 16) & 255) / 255.0f); // window width
    float wh = fh * (0.4f + 0.25f * (float)((v >> 24) & 255) / 255.0f); // window height
    int shop = (v >> 4) & 1;
    float len = b->z1 - b->z0;

    float z0 = maxf(b->z0, 0.5f), z1 = minf(b->z1, sc->zfar);
    if (z1 <= z0) return;
    if (b->kind == BLK_BUILDING && b->z0 > 0.5f) {   // the near side wall, visible through gaps
        material sw = mat_scaled(wall, d->side_shade);
        shader s = shade(r, &sw, z0);
        float xa = px(sc, Xf, z0), xb = px(sc, Xf < 0 ? Xf - b->depth : Xf + b->depth, z0);
        fill_rect(r, &s, minf(xa, xb), py(sc, b->height, z0), maxf(xa, xb), py(sc, 0, z0));
    }
    float xa = px(sc, Xf, z0), xb = px(sc, Xf, z1);
    int x0 = (int)maxf(0, ceilf(minf(xa, xb) - 0.5f)), x1 = (int)minf((float)r->w, ceilf(maxf(xa, xb) - 0.5f));
    for (int x = x0; x < x1; x++) {
        float den = (float)x + 0.5f - sc->vx;
        if (den == 0 || (den < 0) != (Xf < 0)) continue;
        float Z = sc->f * Xf / den;
        if (Z < z0 || Z >= z1) continue;
        float hgt = b->height;
        if (b->kind == BLK_VEGETATION) hgt *= 0.6f + 0.4f * bumps(Z * 0.4f, b->var);
        int ytop = (int)ceilf(py(sc, hgt, Z) - 0.5f), ybot = (int)ceilf(py(sc, 0, Z) - 0.5f);
        if (ytop < 0) ytop = 0;
        if (ybot > r->h) ybot = r->h;
        shader sw = shade(r, &wall, Z);
        float u = Z - b->z0;
        float cu = fmodf(u, sp);
        int window_col = b->kind == BLK_BUILDING && u > 0.8f && u < len - 0.8f && fabsf(cu - 0.5f * sp) < 0.5f * ww;
        if (!window_col) { fill_vspan(r, &sw, x, ytop, ybot); continue; }
        shader sg = shade(r, &glass, Z), sl = shade(r, &lit, Z * 0.5f);
        uint32_t col = (uint32_t)(u / sp);
        for (int y = ytop; y < ybot; y++) {
            float Y = sc->cam_h - ((float)y + 0.5f - sc->vy) * Z / sc->f;
            int floor_i = (int)(Y / fh);
            float fy = Y - floor_i * fh;
            const shader *s = &sw;
            if (floor_i >= 1 && Y < b->height - 0.6f && fabsf(fy - 0.5f * fh) < 0.5f * wh)
                s = hash01(v ^ col, (uint32_t)floor_i) < d->lit_windows ? &sl : &sg;
            else if (floor_i == 0 && shop && Y > 0.4f && Y < 2.6f)
                s = &sg;
            shade_pixel(r, s, x, y);
        }
    }
}

static void render_low(raster *r, const scene *sc, const scene_low *l, float Xw) {
    int cls = l->kind == LOW_WALL ? C_WALL : l->kind == LOW_FENCE ? C_FENCE : C_VEGETATION;
    material m = mat_class(r, cls, l->var, l->kind == LOW_HEDGE ? 0.45f : 0.25f, l->kind == LOW_FENCE);
    material post = mat_scaled(m, 0.6f);
    float z0 = maxf(l->z0, 0.5f), z1 = minf(l->z1, sc->zfar);
    if (z1 <= z0) return;
    float xa = px(sc, Xw, z0), xb = px(sc, Xw, z1);
    int x0 = (int)maxf(0, ceilf(minf(xa, xb) - 0.5f)), x1 = (int)minf((float)r->w, ceilf(maxf(xa, xb) - 0.5f));
    for (int x = x0; x < x1; x++) {
        float den = (float)x + 0.5f - sc->vx;
        if (den == 0 || (den < 0) != (Xw < 0)) continue;
        float Z = sc->f * Xw / den;
        if (Z < z0 || Z >= z1) continue;
        float hgt = l->height;
        if (l->kind == LOW_HEDGE) hgt *= 0.8f + 0.2f * bumps(Z * 1.5f, l->var);
        int is_post = l->kind == LOW_FENCE && fmodf(Z - l->z0, 2.5f) < 0.12f;
        shader s = shade(r, is_post ? &post : &m, Z);
        fill_vspan(r, &s, x, (int)ceilf(py(sc, hgt, Z) - 0.5f), (int)ceilf(py(sc, 0, Z) - 0.5f));
    }
}

// ---------------------------------------------------------------------------------------
// Objects. Billboards (people, two-wheelers, poles) are drawn in a local frame: u metres to
// the right of the anchor, v metres up, at the anchor's depth.

typedef struct { float cx, gy, s; } frame;

static frame frame_at(const scene *sc, float X, float Z) {
    frame fr = {px(sc, X, Z), py(sc, 0, Z), sc->f / Z};
    return fr;
}
static inline float fx(const frame *fr, float u) { return fr->cx + u * fr->s; }
static inline float fy(const frame *fr, float v) { return fr->gy - v * fr->s; }

static void b_rect(raster *r, const shader *s, const frame *fr, float u0, float v0, float u1, float v1) {
    fill_rect(r, s, fx(fr, u0), fy(fr, v1), fx(fr, u1), fy(fr, v0));
}
static void b_ellipse(raster *r, const shader *s, const frame *fr, float u, float v, float ru, float rv) {
    fill_ellipse(r, s, fx(fr, u), fy(fr, v), ru * fr->s, rv * fr->s);
}
static void b_line(raster *r, const shader *s, const frame *fr, float u0, float v0, float u1, float v1, float t) {
    fill_line(r, s, fx(fr, u0), fy(fr, v0), fx(fr, u1), fy(fr, v1), t * fr->s);
}
static void b_quad(raster *r, const shader *s, const frame *fr, const float *uv) {
    float q[8];
    for (int i = 0; i < 4; i++) { q[2 * i] = fx(fr, uv[2 * i]); q[2 * i + 1] = fy(fr, uv[2 * i + 1]); }
    fill_poly(r, s, q, 4);
}

// An axis-aligned box: the visible side face, the top face when below the camera, then the
// near face.
static void draw_box(raster *r, const scene *sc, const shader *front, const shader *side, const shader *top,
                     float X0, float X1, float Y0, float Y1, float Z0, float Z1) {
    if (side && (X1 < 0 || X0 > 0)) {
        float Xs = X1 < 0 ? X1 : X0;
        float q[8] = {px(sc, Xs, Z0), py(sc, Y0, Z0), px(sc, Xs, Z1), py(sc, Y0, Z1),
                      px(sc, Xs, Z1), py(sc, Y1, Z1), px(sc, Xs, Z0), py(sc, Y1, Z0)};
        fill_poly(r, side, q, 4);
    }
    if (top && Y1 < sc->cam_h) {
        float q[8] = {px(sc, X0, Z0), py(sc, Y1, Z0), px(sc, X1, Z0), py(sc, Y1, Z0),
                      px(sc, X1, Z1), py(sc, Y1, Z1), px(sc, X0, Z1), py(sc, Y1, Z1)};
        fill_poly(r, top, q, 4);
    }
    fill_rect(r, front, px(sc, X0, Z0), py(sc, Y1, Z0), px(sc, X1, Z0), py(sc, Y0, Z0));
}

static void draw_wheel_side(raster *r, const scene *sc, const shader *tire, const shader *hub,
                            float Xs, float Zw, float radius) {
    float ry = sc->f * radius / Zw, rx = minf(ry, sc->f * fabsf(Xs) * radius / (Zw * Zw));
    float cx = px(sc, Xs, Zw), cy = py(sc, radius, Zw);
    fill_ellipse(r, tire, cx, cy, rx, ry);
    fill_ellipse(r, hub, cx, cy, rx * 0.45f, ry * 0.45f);
}

static void draw_vehicle(raster *r, const scene *sc, const scene_object *o) {
    const synth_domain *d = r->dom;
    int cls = o->kind == OBJ_CAR ? C_CAR : o->kind == OBJ_TRUCK ? C_TRUCK : o->kind == OBJ_BUS ? C_BUS : C_TRAIN;
    float X0 = o->X - o->width / 2, X1 = o->X + o->width / 2, Z0 = o->Z, Z1 = o->Z + o->length, H = o->height;
    int oncoming = o->X < -0.5f * sc->lane_w && ((o->var >> 3) & 3) != 0;
    material body = mat_class(r, cls, o->var, 0.12f, 0);
    material side = mat_scaled(body, d->side_shade), top = mat_scaled(body, 1.08f);
    material glass = d->painted ? mat_rgb(cls, 80, 90, 140, 0.05f, 0) : mat_rgb(cls, 40, 48, 58, 0.15f, 0);
    material tire = mat_rgb(cls, 22, 22, 24, 0.1f, 1), hubm = mat_rgb(cls, 120, 120, 125, 0.1f, 0);
    material lamp = oncoming ? mat_rgb(cls, 235, 235, 210, 0.05f, 0) : mat_rgb(cls, 190, 20, 20, 0.05f, 0);
    shader sb = shade(r, &body, Z0), ss = shade(r, &side, Z0), st = shade(r, &top, Z0);
    material glass_side = mat_scaled(glass, 0.8f);
    shader sg = shade(r, &glass, Z0), sgs = shade(r, &glass_side, Z0);
    shader stire = shade(r, &tire, Z0), shub = shade(r, &hubm, Z0), sl = shade(r, &lamp, Z0);
    shader shadow;
    shader_shadow(&shadow, d->painted ? 0.8f : 0.55f);
    float q[8] = {px(sc, X0 - 0.15f, Z0 - 0.2f), py(sc, 0, Z0 - 0.2f), px(sc, X1 + 0.15f, Z0 - 0.2f), py(sc, 0, Z0 - 0.2f),
                  px(sc, X1 + 0.15f, Z1), py(sc, 0, Z1), px(sc, X0 - 0.15f, Z1), py(sc, 0, Z1)};
    if (Z0 > 0.5f) fill_poly(r, &shadow, q, 4);

    frame fr = frame_at(sc, o->X, Z0);   // the near face
    float hw = o->width / 2;
    float Xs = X1 < 0 ? X1 : X0;
    int side_visible = X1 < 0 || X0 > 0;
    float wr = cls == C_CAR ? 0.32f : 0.5f;
    float body_y0 = cls == C_CAR ? 0.2f : cls == C_TRAIN ? 0.45f : 0.32f;
    // wheels first: the body hides their upper half
    if (side_visible) {
        draw_wheel_side(r, sc, &stire, &shub, Xs, Z0 + 0.18f * o->length, wr);
        draw_wheel_side(r, sc, &stire, &shub, Xs, Z1 - 0.18f * o->length, wr);
    }
    if (cls == C_CAR) {
        draw_box(r, sc, &sb, &ss, &st, X0, X1, body_y0, 0.58f * H, Z0, Z1);
        float ci = 0.12f * o->width;
        draw_box(r, sc, &sg, &sgs, &st, X0 + ci, X1 - ci, 0.58f * H, H, Z0 + 0.22f * o->length, Z0 + 0.78f * o->length);
    } else if (cls == C_TRUCK) {
        float split = Z0 + 0.7f * o->length;
        if (oncoming) {   // cab first, cargo behind
            draw_box(r, sc, &sb, &ss, &st, X0 + 0.05f, X1 - 0.05f, body_y0 + 0.2f, H, Z0 + 0.3f * o->length, Z1);
            draw_box(r, sc, &sb, &ss, &st, X0, X1, body_y0, 0.78f * H, Z0, Z0 + 0.3f * o->length);
            b_rect(r, &sg, &fr, -0.42f * o->width, 0.55f * H, 0.42f * o->width, 0.74f * H);   // windscreen
        } else {
            draw_box(r, sc, &sb, &ss, &st, X0 + 0.05f, X1 - 0.05f, body_y0, 0.78f * H, split, Z1);
            draw_box(r, sc, &sb, &ss, &st, X0, X1, body_y0 + 0.2f, H, Z0, split);
        }
    } else {
        draw_box(r, sc, &sb, &ss, &st, X0, X1, body_y0, H, Z0, Z1);
        if (side_visible) {   // window band along the side
            float a = 0.52f * H, b = 0.88f * H, za = Z0 + 0.6f, zb = Z1 - 0.6f;
            float w8[8] = {px(sc, Xs, za), py(sc, a, za), px(sc, Xs, zb), py(sc, a, zb),
                           px(sc, Xs, zb), py(sc, b, zb), px(sc, Xs, za), py(sc, b, za)};
            fill_poly(r, &sgs, w8, 4);
        }
        if (cls == C_TRAIN) {   // pantograph
            frame fr = frame_at(sc, o->X, Z0 + 0.3f * o->length);
            b_line(r, &sb, &fr, -0.5f, H, 0.2f, H + 0.8f, 0.06f);
            b_line(r, &sb, &fr, 0.2f, H + 0.8f, -0.4f, H + 1.1f, 0.06f);
        }
    }
    if (cls != C_TRUCK) {   // rear or front window of the near face
        float wa = cls == C_CAR ? 0.64f * H : 0.55f * H, wb = cls == C_CAR ? 0.95f * H : 0.9f * H;
        float inset = cls == C_CAR ? 0.2f * o->width : 0.08f * o->width;
        b_rect(r, &sg, &fr, -hw + inset, wa, hw - inset, wb);
    }
    b_rect(r, &stire, &fr, -hw + 0.08f, 0, -hw + 0.38f, body_y0 + 0.1f);
    b_rect(r, &stire, &fr, hw - 0.38f, 0, hw - 0.08f, body_y0 + 0.1f);
    float ly = cls == C_CAR ? 0.45f * H : 0.3f * H;
    b_rect(r, &sl, &fr, -hw + 0.08f, ly, -hw + 0.32f, ly + 0.1f);
    b_rect(r, &sl, &fr, hw - 0.32f, ly, hw - 0.08f, ly + 0.1f);
    if (d->lights) {
        float glow_rgb[3] = {lamp.rgb[0], lamp.rgb[1] * (oncoming ? 1 : 0.4f), lamp.rgb[2] * (oncoming ? 0.9f : 0.3f)};
        float rad = fr.s * (oncoming ? 0.3f : 0.16f);
        add_glow(r, fx(&fr, -hw + 0.2f), fy(&fr, ly + 0.05f), rad, glow_rgb);
        add_glow(r, fx(&fr, hw - 0.2f), fy(&fr, ly + 0.05f), rad, glow_rgb);
    }
}

static void draw_person_shape(raster *r, const frame *fr, const shader *top, const shader *legs,
                              const shader *skin, float H, float W, int side_view, float phase) {
    if (!side_view) {
        b_rect(r, legs, fr, -0.45f * W, 0, -0.45f * W + 0.36f * W, 0.5f * H);
        b_rect(r, legs, fr, 0.45f * W - 0.36f * W, 0, 0.45f * W, 0.5f * H);
        float t[8] = {-0.5f * W, 0.82f * H, 0.5f * W, 0.82f * H, 0.42f * W, 0.46f * H, -0.42f * W, 0.46f * H};
        b_quad(r, top, fr, t);
        b_rect(r, top, fr, -0.68f * W, 0.47f * H, -0.48f * W, 0.8f * H);
        b_rect(r, top, fr, 0.48f * W, 0.47f * H, 0.68f * W, 0.8f * H);
        b_ellipse(r, skin, fr, 0, 0.905f * H, 0.19f * W, 0.068f * H);
    } else {
        float dir = (float)side_view, stride = 0.16f * H * phase;
        b_line(r, legs, fr, 0, 0.48f * H, dir * stride, 0.02f * H, 0.3f * W);
        b_line(r, legs, fr, 0, 0.48f * H, -dir * stride, 0.02f * H, 0.3f * W);
        float t[8] = {-0.3f * W, 0.82f * H, 0.3f * W, 0.82f * H, 0.26f * W, 0.46f * H, -0.26f * W, 0.46f * H};
        b_quad(r, top, fr, t);
        b_line(r, top, fr, 0, 0.79f * H, -dir * 0.6f * stride, 0.5f * H, 0.2f * W);
        b_line(r, top, fr, 0, 0.79f * H, dir * 0.6f * stride, 0.5f * H, 0.2f * W);
        b_ellipse(r, skin, fr, dir * 0.05f * W, 0.905f * H, 0.17f * W, 0.068f * H);
    }
}

static void draw_person(raster *r, const scene *sc, const scene_object *o) {
    const synth_domain *d = r->dom;
    static const uint8_t SKIN[4][3] = {{225, 190, 160}, {190, 145, 110}, {140, 100, 70}, {95, 65, 45}};
    const uint8_t *sk = SKIN[(o->var >> 28) & 3];
    material top = mat_class(r, C_PERSON, o->var, 0.2f, 0);
    material legs = mat_class(r, C_PERSON, mix32(o->var), 0.2f, 0);
    material skin = d->painted ? mat_class(r, C_PERSON, mix32(o->var + 7), 0.05f, 0) : mat_rgb(C_PERSON, sk[0], sk[1], sk[2], 0.1f, 0);
    shader st = shade(r, &top, o->Z), sl = shade(r, &legs, o->Z), ss = shade(r, &skin, o->Z);
    frame fr = frame_at(sc, o->X, o->Z);
    draw_person_shape(r, &fr, &st, &sl, &ss, o->height, o->width, o->side_view, 0.4f + 0.6f * hash01(o->var, 3));
}

// Bicycles and motorcycles, with or without a rider. Side view: the machine lies along X.
static void draw_two_wheeler(raster *r, const scene *sc, const scene_object *o) {
    const synth_domain *d = r->dom;
    int moto = o->kind == OBJ_RIDER_MOTORCYCLE || o->kind == OBJ_MOTORCYCLE;
    int rider = o->kind == OBJ_RIDER_BICYCLE || o->kind == OBJ_RIDER_MOTORCYCLE;
    int cls = moto ? C_MOTORCYCLE : C_BICYCLE;
    material paint = mat_class(r, cls, o->var, 0.1f, 0);
    material tire = mat_rgb(cls, 25, 25, 28, 0.1f, 1), metal = mat_rgb(cls, 150, 150, 155, 0.1f, 0);
    material rtop = mat_class(r, C_RIDER, mix32(o->var), 0.2f, 0), rlegs = mat_class(r, C_RIDER, mix32(o->var + 1), 0.2f, 0);
    material rskin = d->painted ? rtop : mat_rgb(C_RIDER, 200, 160, 130, 0.1f, 0);
    if (moto && !d->painted) rskin = mat_rgb(C_RIDER, 30, 30, 35, 0.1f, 0);   // helmet
    shader sp = shade(r, &paint, o->Z), stire = shade(r, &tire, o->Z), sm = shade(r, &metal, o->Z);
    shader st = shade(r, &rtop, o->Z), sl = shade(r, &rlegs, o->Z), sk = shade(r, &rskin, o->Z);
    frame fr = frame_at(sc, o->X, o->Z);
    float k = o->height / 1.75f;   // rider size
    if (o->side_view) {
        float dir = (float)o->side_view, half = o->length * 0.5f;
        float wr = moto ? 0.32f : 0.34f, wc = half - wr * (moto ? 0.9f : 1.0f);
        float thick = moto ? 0.12f : 0.05f;
        fill_ring(r, &stire, fx(&fr, -wc), fy(&fr, wr), wr * fr.s, wr * fr.s, thick * fr.s);
        fill_ring(r, &stire, fx(&fr, wc), fy(&fr, wr), wr * fr.s, wr * fr.s, thick * fr.s);
        if (moto) {
            b_ellipse(r, &sm, &fr, -wc, wr, 0.12f, 0.12f);
            b_ellipse(r, &sm, &fr, wc, wr, 0.12f, 0.12f);
            b_ellipse(r, &sp, &fr, 0, 0.62f, 0.55f, 0.2f);
            b_rect(r, &stire, &fr, -0.2f, 0.28f, 0.25f, 0.55f);
            b_line(r, &sm, &fr, dir * wc, wr, dir * (wc - 0.2f), 1.0f, 0.06f);
        } else {
            float bb[2] = {0, 0.3f}, seat[2] = {-0.2f * dir, 0.85f}, head[2] = {0.35f * dir, 0.9f};
            float rh[2] = {-wc * dir, wr}, fh[2] = {wc * dir, wr};
            b_line(r, &sp, &fr, rh[0], rh[1], seat[0], seat[1], 0.05f);
            b_line(r, &sp, &fr, rh[0], rh[1], bb[0], bb[1], 0.05f);
            b_line(r, &sp, &fr, bb[0], bb[1], seat[0], seat[1], 0.05f);
            b_line(r, &sp, &fr, seat[0], seat[1], head[0], head[1], 0.05f);
            b_line(r, &sp, &fr, bb[0], bb[1], head[0], head[1], 0.05f);
            b_line(r, &sp, &fr, head[0], head[1], fh[0], fh[1], 0.05f);
            b_line(r, &sp, &fr, head[0], head[1], head[0] - 0.05f * dir, 1.02f, 0.05f);
            b_line(r, &sp, &fr, seat[0] - 0.07f * dir, 0.9f, seat[0] + 0.07f * dir, 0.9f, 0.05f);
        }
        if (rider) {
            float hip_u = -0.2f * dir, hip_v = moto ? 0.85f : 0.95f;
            float sh_u = (moto ? 0.05f : 0.1f) * dir, sh_v = hip_v + 0.5f * k;
            float hand_u = (moto ? wc - 0.2f : 0.3f) * dir, hand_v = 1.0f;
            b_line(r, &sl, &fr, hip_u, hip_v, 0.1f * dir, 0.65f, 0.15f * k);
            b_line(r, &sl, &fr, 0.1f * dir, 0.65f, 0.02f * dir, 0.32f, 0.13f * k);
            b_line(r, &st, &fr, hip_u, hip_v, sh_u, sh_v, 0.34f * k);
            b_line(r, &st, &fr, sh_u, sh_v, hand_u, hand_v, 0.09f * k);
            b_ellipse(r, &sk, &fr, sh_u + 0.07f * dir, sh_v + 0.16f * k, 0.11f * k, 0.12f * k);
        }
    } else {   // seen from behind
        float wheel = moto ? 0.16f : 0.05f, wh = moto ? 0.62f : 0.68f;
        b_rect(r, &stire, &fr, -wheel / 2, 0, wheel / 2, wh);
        b_line(r, &sm, &fr, -0.32f, 1.0f, 0.32f, 1.0f, 0.04f);
        if (moto) b_rect(r, &sp, &fr, -0.25f, 0.45f, 0.25f, 0.9f);
        if (rider) {
            float sh_v = (moto ? 0.85f : 0.95f) + 0.5f * k, wide = moto ? 1.15f : 1.0f;
            float t[8] = {-0.21f * wide * k, sh_v, 0.21f * wide * k, sh_v, 0.16f * wide, sh_v - 0.5f * k, -0.16f * wide, sh_v - 0.5f * k};
            b_rect(r, &sl, &fr, -0.18f * wide, 0.35f, -0.07f, sh_v - 0.45f * k);
            b_rect(r, &sl, &fr, 0.07f, 0.35f, 0.18f * wide, sh_v - 0.45f * k);
            b_quad(r, &st, &fr, t);
            b_line(r, &st, &fr, -0.2f * k, sh_v - 0.05f, -0.3f, 1.0f, 0.08f * k);
            b_line(r, &st, &fr, 0.2f * k, sh_v - 0.05f, 0.3f, 1.0f, 0.08f * k);
            b_ellipse(r, &sk, &fr, 0, sh_v + 0.15f * k, 0.1f * k, 0.12f * k);
        }
        if (moto) {
            material tl = mat_rgb(cls, 200, 20, 20, 0.05f, 0);
            shader stl = shade(r, &tl, o->Z);
            b_rect(r, &stl, &fr, -0.08f, 0.82f, 0.08f, 0.88f);
        }
    }
}

static void draw_pole_object(raster *r, const scene *sc, const scene_object *o) {
    const synth_domain *d = r->dom;
    material pm = mat_class(r, C_POLE, o->var, 0.15f, 0);
    shader sp = shade(r, &pm, o->Z);
    frame fr = frame_at(sc, o->X, o->Z);
    float H = o->height, hw = o->width / 2, dir = (float)o->side_view;
    b_rect(r, &sp, &fr, -hw, 0, hw, H);
    switch (o->kind) {
    case OBJ_LAMP: {
        b_line(r, &sp, &fr, 0, H, dir * 1.6f, H + 0.25f, 0.1f);
        b_ellipse(r, &sp, &fr, dir * 1.7f, H + 0.18f, 0.3f, 0.1f);
        if (d->lights) {
            float c[3] = {255, 210, 150};
            add_glow(r, fx(&fr, dir * 1.7f), fy(&fr, H + 0.1f), 0.5f * fr.s, c);
        }
        break;
    }
    case OBJ_TRAFFIC_LIGHT:
    case OBJ_OVERHEAD_LIGHT: {
        material hm = mat_class(r, C_LIGHT, o->var, 0.1f, 0);
        shader sh = shade(r, &hm, o->Z);
        float at[2] = {0, 0};
        int n = 1;
        if (o->kind == OBJ_OVERHEAD_LIGHT) {
            b_line(r, &sp, &fr, 0, H, dir * o->length, H, 0.18f);
            at[0] = dir * o->length; at[1] = dir * o->length * 0.5f; n = 2;
        }
        int lit = (int)((o->var >> 12) % 3);
        static const float LAMP[3][3] = {{230, 30, 30}, {240, 180, 20}, {30, 220, 90}};
        for (int i = 0; i < n; i++) {
            float top = o->kind == OBJ_OVERHEAD_LIGHT ? H - 0.05f : H + 0.05f;
            b_rect(r, &sh, &fr, at[i] - 0.17f, top - 1.0f, at[i] + 0.17f, top);
            for (int j = 0; j < 3; j++) {
                material lm = j == lit ? mat_rgb(C_LIGHT, LAMP[j][0], LAMP[j][1], LAMP[j][2], 0.05f, 0) : mat_rgb(C_LIGHT, 30, 30, 30, 0.05f, 0);
                shader sl = shade(r, &lm, o->Z);
                b_ellipse(r, &sl, &fr, at[i], top - 0.2f - 0.3f * j, 0.09f, 0.09f);
                if (j == lit && d->lights) add_glow(r, fx(&fr, at[i]), fy(&fr, top - 0.2f - 0.3f * j), 0.3f * fr.s, LAMP[j]);
            }
        }
        break;
    }
    case OBJ_SIGN: {
        material a = mat_class(r, C_SIGN, o->var, 0.08f, 0), b = mat_class(r, C_SIGN, o->var + 2, 0.05f, 0);
        if (!d->painted) b = mat_rgb(C_SIGN, 235, 235, 235, 0.05f, 0);
        shader sa = shade(r, &a, o->Z), sb = shade(r, &b, o->Z);
        float c = H - 0.35f, sz = 0.3f + 0.1f * hash01(o->var, 9);
        switch ((o->var >> 20) & 3) {
        case 0: b_ellipse(r, &sa, &fr, 0, c, sz, sz); b_ellipse(r, &sb, &fr, 0, c, sz * 0.7f, sz * 0.7f); break;
        case 1: {
            float t[8] = {-sz * 1.1f, c + sz * 0.7f, sz * 1.1f, c + sz * 0.7f, 0, c - sz * 1.1f, 0, c - sz * 1.1f};
            b_quad(r, &sa, &fr, t);
            float u[8] = {-sz * 0.6f, c + sz * 0.45f, sz * 0.6f, c + sz * 0.45f, 0, c - sz * 0.5f, 0, c - sz * 0.5f};
            b_quad(r, &sb, &fr, u);
            break;
        }
        case 2: b_rect(r, &sa, &fr, -sz, c - sz * 0.8f, sz, c + sz * 0.8f); b_rect(r, &sb, &fr, -sz * 0.85f, c - sz * 0.15f, sz * 0.85f, c + sz * 0.15f); break;
        default: {
            float t[8] = {0, c + sz, sz, c, 0, c - sz, -sz, c};
            b_quad(r, &sa, &fr, t);
        }
        }
        break;
    }
    default: break;
    }
}

static void draw_tree(raster *r, const scene *sc, const scene_object *o) {
    const synth_domain *d = r->dom;
    material trunk = d->painted ? mat_rgb(C_VEGETATION, 150, 90, 60, 0.1f, 0) : mat_rgb(C_VEGETATION, 85, 68, 50, 0.2f, 1);
    shader str = shade(r, &trunk, o->Z);
    frame fr = frame_at(sc, o->X, o->Z);
    float H = o->height, R = o->width / 2;
    b_rect(r, &str, &fr, -0.15f, 0, 0.15f, 0.6f * H);
    int n = 4 + (int)(o->var % 3);
    for (int i = 0; i < n; i++) {
        material leaf = mat_class(r, C_VEGETATION, o->var, 0.45f, 0);
        leaf = mat_scaled(leaf, 0.8f + 0.35f * hash01(o->var, (uint32_t)(10 + i)));
        shader sl = shade(r, &leaf, o->Z);
        float a = 6.2831853f * (float)i / (float)n + hash01(o->var, (uint32_t)(20 + i));
        float dist = i == 0 ? 0 : R * 0.45f;
        float rr = R * (0.55f + 0.25f * hash01(o->var, (uint32_t)(30 + i)));
        b_ellipse(r, &sl, &fr, dist * cosf(a), H - R + dist * 0.7f * sinf(a), rr, rr * 0.9f);
    }
}

static void draw_object(raster *r, const scene *sc, const scene_object *o) {
    if (o->Z < 0.5f) return;
    switch (o->kind) {
    case OBJ_CAR: case OBJ_TRUCK: case OBJ_BUS: case OBJ_TRAIN: draw_vehicle(r, sc, o); break;
    case OBJ_PERSON: draw_person(r, sc, o); break;
    case OBJ_RIDER_BICYCLE: case OBJ_RIDER_MOTORCYCLE: case OBJ_BICYCLE: case OBJ_MOTORCYCLE: draw_two_wheeler(r, sc, o); break;
    case OBJ_TREE: draw_tree(r, sc, o); break;
    default: draw_pole_object(r, sc, o); break;
    }
}

// The ego vehicle's bonnet along the bottom edge: ignored in the labels, as in Cityscapes.
static void render_hood(raster *r, const scene *sc) {
    if (sc->hood <= 0) return;
    material m = mat_class(r, -1, 0, 0.1f, 0);
    m.cls = C_IGNORE;
    shader s = shade(r, &m, 0);
    float top = (float)r->h * (1.0f - sc->hood);
    for (int x = 0; x < r->w; x++) {
        float t = ((float)x + 0.5f - 0.5f * (float)r->w) / (0.5f * (float)r->w);
        float y = top + (float)r->h * sc->hood * 0.6f * t * t;
        fill_vspan(r, &s, x, (int)ceilf(y - 0.5f), r->h);
    }
}

void render_scene(raster *r, const scene *sc, rng_stream *rng) {
    const synth_domain *d = r->dom;
    render_sky(r, sc);
    ground_mats g;
    g.road = mat_class(r, C_ROAD, sc->var, 0.35f, 1);
    g.walk[0] = mat_class(r, C_SIDEWALK, mix32(sc->var + 1), 0.25f, 1);
    g.walk[1] = ((sc->var >> 7) & 1) ? g.walk[0] : mat_class(r, C_SIDEWALK, mix32(sc->var + 2), 0.25f, 1);
    g.curb = mat_scaled(g.walk[0], 1.15f);
    g.terrain = mat_class(r, C_TERRAIN, mix32(sc->var + 3), 0.5f, 0);
    g.marking = d->painted ? mat_rgb(C_ROAD, 255, 255, 255, 0.02f, 0) : mat_rgb(C_ROAD, 215, 215, 205, 0.12f, 1);
    render_ground(r, sc, &g);
    render_skyline(r, sc);
    for (int side = 0; side < 2; side++) {
        float Xf = side ? sc->face_r : sc->face_l;
        for (int i = sc->nblock[side] - 1; i >= 0; i--)
            if (sc->block[side][i].kind != BLK_GAP) render_block(r, sc, &sc->block[side][i], Xf);
        for (int i = 0; i < sc->nlow[side]; i++) render_low(r, sc, &sc->low[side][i], side ? sc->walk_r : sc->walk_l);
    }
    for (int i = 0; i < sc->nobj; i++) draw_object(r, sc, &sc->obj[i]);
    render_hood(r, sc);
    render_effects(r, rng);
}
