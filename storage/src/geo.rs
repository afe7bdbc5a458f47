//! GeoJSON points and regions, for the expression language's geo comparison (`CmpGeo`):
//! true when a point lies within a region, whichever side holds which.
//!
//! Shapes are what Aerospike accepts: `Point`, `Polygon` (an outer ring and holes),
//! `MultiPolygon` and `AeroCircle` (`[[lon, lat], radius in meters]`). Edges are great-circle
//! arcs and distances are on a sphere of the Earth's mean radius, as in Aerospike's S2-based
//! geometry, so a large polygon is not distorted by treating degrees as planar coordinates.

use serde_json::Value as Json;

/// The Earth's mean radius in meters.
const EARTH_RADIUS_M: f64 = 6_371_000.0;

type Vec3 = [f64; 3];

#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Point(Vec3),
    /// Polygons, each an outer ring followed by its holes (rings without the closing vertex).
    Polygons(Vec<Vec<Vec<Vec3>>>),
    Circle {
        center: Vec3,
        radius_m: f64,
    },
}

/// The JSON text of a GeoJSON value: a bin's particle carries a header first (see
/// [`particle_text`]), a value written in an expression or a list is the text alone.
pub fn text_of(bytes: &[u8]) -> Option<&[u8]> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'{' {
        return Some(bytes);
    }
    particle_text(bytes)
}

/// The JSON text of a GeoJSON particle (`u8 flags · u16 ncells · ncells × u64 · JSON`);
/// `None` when the header or its cell array does not fit.
pub fn particle_text(bytes: &[u8]) -> Option<&[u8]> {
    let [_flags, hi, lo, rest @ ..] = bytes else {
        return None;
    };
    let cells = usize::from(u16::from_be_bytes([*hi, *lo]));
    rest.get(cells * 8..)
}

/// Parse a GeoJSON value (with or without its particle header); `None` when it is not a
/// shape this module knows.
pub fn parse(bytes: &[u8]) -> Option<Shape> {
    let json: Json = serde_json::from_slice(text_of(bytes)?).ok()?;
    let coords = json.get("coordinates")?;
    match json.get("type")?.as_str()? {
        "Point" => Some(Shape::Point(position(coords)?)),
        "Polygon" => Some(Shape::Polygons(vec![polygon(coords)?])),
        "MultiPolygon" => Some(Shape::Polygons(
            coords
                .as_array()?
                .iter()
                .map(polygon)
                .collect::<Option<_>>()?,
        )),
        "AeroCircle" => {
            let [center, radius] = coords.as_array()?.as_slice() else {
                return None;
            };
            let radius_m = radius.as_f64().filter(|r| r.is_finite() && *r >= 0.0)?;
            Some(Shape::Circle {
                center: position(center)?,
                radius_m,
            })
        }
        _ => None,
    }
}

/// Whether one side is a point lying within the other, a region.
pub fn within_either(a: &Shape, b: &Shape) -> bool {
    match (a, b) {
        (Shape::Point(p), region) | (region, Shape::Point(p)) => contains(region, *p),
        _ => false,
    }
}

fn contains(region: &Shape, p: Vec3) -> bool {
    match region {
        Shape::Point(_) => false,
        Shape::Circle { center, radius_m } => angle(*center, p) * EARTH_RADIUS_M <= *radius_m,
        Shape::Polygons(polygons) => polygons.iter().any(|rings| {
            let (outer, holes) = rings.split_first().expect("a polygon has an outer ring");
            in_ring(outer, p) && !holes.iter().any(|h| in_ring(h, p))
        }),
    }
}

/// A `[lon, lat]` position as a unit vector.
fn position(v: &Json) -> Option<Vec3> {
    let a = v.as_array()?;
    let (lon, lat) = (a.first()?.as_f64()?, a.get(1)?.as_f64()?);
    if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
        return None;
    }
    let (lon, lat) = (lon.to_radians(), lat.to_radians());
    Some([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()])
}

/// A polygon's rings; each needs three distinct vertices (the closing repeat is dropped).
fn polygon(v: &Json) -> Option<Vec<Vec<Vec3>>> {
    let rings: Vec<Vec<Vec3>> = v
        .as_array()?
        .iter()
        .map(|ring| {
            let mut pts: Vec<Vec3> = ring
                .as_array()?
                .iter()
                .map(position)
                .collect::<Option<_>>()?;
            if pts.len() > 1 && pts.first() == pts.last() {
                pts.pop();
            }
            (pts.len() >= 3).then_some(pts)
        })
        .collect::<Option<_>>()?;
    (!rings.is_empty()).then_some(rings)
}

fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

/// The angle between two unit vectors (radians), stable for tiny and large angles.
fn angle(a: Vec3, b: Vec3) -> f64 {
    norm(cross(a, b)).atan2(dot(a, b))
}

/// Whether `p` lies inside `ring`, taken as the smaller of the two regions it bounds (as S2
/// normalizes loops). Seen from `p`, the edges turn through a full circle exactly when the
/// ring separates `p` from its antipode; of the two, the inside one is on the side of the
/// ring's centre. A point on a vertex counts as inside.
fn in_ring(ring: &[Vec3], p: Vec3) -> bool {
    let centre = ring
        .iter()
        .fold([0.0; 3], |c, v| [c[0] + v[0], c[1] + v[1], c[2] + v[2]]);
    if dot(centre, p) <= 0.0 {
        return false;
    }
    // The direction from `p` towards `v` along the sphere (the tangent at `p`).
    let toward = |v: Vec3| {
        let d = dot(p, v);
        [v[0] - d * p[0], v[1] - d * p[1], v[2] - d * p[2]]
    };
    let mut turned = 0.0;
    for (i, v) in ring.iter().enumerate() {
        let (t1, t2) = (toward(*v), toward(ring[(i + 1) % ring.len()]));
        if norm(t1) < 1e-12 {
            return true;
        }
        turned += dot(cross(t1, t2), p).atan2(dot(t1, t2));
    }
    turned.abs() > std::f64::consts::PI
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(lon: f64, lat: f64) -> Shape {
        parse(format!(r#"{{"type":"Point","coordinates":[{lon},{lat}]}}"#).as_bytes()).unwrap()
    }

    const SQUARE: &str = r#"{"type":"Polygon","coordinates":[[[-1,-1],[1,-1],[1,1],[-1,1],[-1,-1]],
        [[-0.5,-0.5],[0.5,-0.5],[0.5,0.5],[-0.5,0.5],[-0.5,-0.5]]]}"#;

    #[test]
    fn points_in_a_polygon_with_a_hole() {
        let square = parse(SQUARE.as_bytes()).unwrap();
        assert!(within_either(&point(0.75, 0.0), &square));
        assert!(within_either(&square, &point(-0.9, 0.9)));
        assert!(!within_either(&point(0.0, 0.0), &square), "in the hole");
        assert!(!within_either(&point(1.5, 0.0), &square));
        assert!(
            !within_either(&point(179.0, 0.0), &square),
            "far side of the Earth"
        );
        assert!(!within_either(&square, &square));
        assert!(!within_either(&point(0.0, 0.0), &point(0.0, 0.0)));
    }

    #[test]
    fn edges_are_great_circles() {
        // A band from longitude -60 to 60 between latitudes 59 and 60 at its corners: its
        // long edges are great circles that bulge north, to about 73.3 and 73.9 degrees at
        // longitude 0, so (0, 73.6) is inside and (0, 59.5) outside, the reverse of a planar
        // test.
        let band = parse(
            br#"{"type":"Polygon","coordinates":[[[-60,59],[60,59],[60,60],[-60,60],[-60,59]]]}"#,
        )
        .unwrap();
        assert!(within_either(&point(0.0, 73.6), &band));
        assert!(!within_either(&point(0.0, 59.5), &band));
        assert!(within_either(&point(59.9, 59.5), &band));
    }

    #[test]
    fn circles_in_meters_and_multipolygons() {
        // One degree of latitude is about 111.2 km.
        let circle = parse(br#"{"type":"AeroCircle","coordinates":[[10,20],112000]}"#).unwrap();
        assert!(within_either(&point(10.0, 21.0), &circle));
        assert!(!within_either(&point(10.0, 21.1), &circle));
        let two = parse(
            br#"{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],
                [[[10,10],[11,10],[11,11],[10,10]]]]}"#,
        )
        .unwrap();
        assert!(within_either(&point(10.8, 10.2), &two));
        assert!(!within_either(&point(5.0, 5.0), &two));
    }

    #[test]
    fn particle_header_and_bad_input() {
        let mut particle = vec![0, 0, 1];
        particle.extend_from_slice(&7u64.to_be_bytes());
        particle.extend_from_slice(br#"{"type":"Point","coordinates":[1,2]}"#);
        assert_eq!(parse(&particle), Some(point(1.0, 2.0)));
        for bad in [
            &br#"{"type":"Point","coordinates":[200,0]}"#[..],
            br#"{"type":"Polygon","coordinates":[[[0,0],[1,1],[0,0]]]}"#,
            br#"{"type":"LineString","coordinates":[[0,0],[1,1]]}"#,
            br#"{"type":"AeroCircle","coordinates":[[0,0],-1]}"#,
            b"not json",
            &[0, 0, 9],
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
