// A minimal JSON reader for the flat records this project writes and reads back (metrics.jsonl,
// status.json, the paper's numbers, evaluation results): one value parsed into a tree of mv_json.
#pragma once

typedef enum { MV_JSON_NULL, MV_JSON_BOOL, MV_JSON_NUM, MV_JSON_STR, MV_JSON_ARR, MV_JSON_OBJ } mv_json_kind;
typedef struct mv_json {
    mv_json_kind kind;
    double num;            // NUM, and BOOL as 0/1
    char *str;             // STR
    char *key;             // the member name when inside an object
    struct mv_json *items; // ARR and OBJ members
    int n;
} mv_json;

// Parses one JSON value (the whole of text, trailing blanks allowed). On failure returns -1 with
// a message giving the column; the caller adds the file:line context.
int mv_json_parse(mv_json *out, const char *text);
const mv_json *mv_json_get(const mv_json *obj, const char *key); // NULL when absent or not an object
double mv_json_num(const mv_json *v, double fallback);            // fallback when not a number
void mv_json_free(mv_json *v);
