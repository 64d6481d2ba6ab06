;; aws-key-scan: finds AWS access key ids (AKIA + 16 upper-case letters or
;; digits) in any text document. Hand-written WebAssembly text against the
;; Extism ABI: the input is the document text (UTF-8), the output a JSON array
;; of diagnostics. Positions are zero-based lines and UTF-16 characters.
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))

  ;; Page 0: the JSON pieces below and a scratch area for numbers (at 1024).
  ;; From page 1 on: the input, then the output being built.
  (memory (export "memory") 2)

  ;; piece A: offset 0, 251 bytes
  (data (i32.const 0) "{\"ruleId\":\"aws-access-key\",\"severity\":\"error\",\"message\":\"AWS access key id committed in source.\",\"remediation\":\"Remove the key from the code, deactivate it in IAM, and load credentials from the environment or an AWS profile.\",\"range\":{\"start\":{\"line\":")
  ;; piece B: offset 251, 13 bytes
  (data (i32.const 251) ",\"character\":")
  ;; piece C: offset 264, 16 bytes
  (data (i32.const 264) "},\"end\":{\"line\":")
  ;; piece D: offset 280, 14 bytes
  (data (i32.const 280) "}},\"fixes\":[]}")

  (global $input i32 (i32.const 65536))
  (global $out (mut i32) (i32.const 0))

  ;; Grows memory so that [0, end) is addressable; traps if the host's cap refuses.
  (func $ensure (param $end i32)
    (local $pages i32)
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (local.set $pages
          (i32.sub (i32.add (i32.shr_u (local.get $end) (i32.const 16)) (i32.const 1)) (memory.size)))
        (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1))
          (then unreachable)))))

  (func $emit_byte (param $byte i32)
    (call $ensure (i32.add (global.get $out) (i32.const 1)))
    (i32.store8 (global.get $out) (local.get $byte))
    (global.set $out (i32.add (global.get $out) (i32.const 1))))

  (func $emit (param $ptr i32) (param $len i32)
    (local $i i32)
    (call $ensure (i32.add (global.get $out) (local.get $len)))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (i32.store8 (i32.add (global.get $out) (local.get $i))
          (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (global.set $out (i32.add (global.get $out) (local.get $len))))

  ;; Writes a non-negative number in decimal.
  (func $emit_number (param $n i32)
    (local $p i32)
    (local.set $p (i32.const 1040))
    (loop $digits
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (i32.ne (local.get $n) (i32.const 0))))
    (call $emit (local.get $p) (i32.sub (i32.const 1040) (local.get $p))))

  (func $byte_at (param $i i32) (result i32)
    (i32.load8_u (i32.add (global.get $input) (local.get $i))))

  ;; A-Z or 0-9
  (func $is_key_char (param $b i32) (result i32)
    (i32.or
      (i32.and (i32.ge_u (local.get $b) (i32.const 65)) (i32.le_u (local.get $b) (i32.const 90)))
      (i32.and (i32.ge_u (local.get $b) (i32.const 48)) (i32.le_u (local.get $b) (i32.const 57)))))

  ;; Whether an access key id starts at $i (input length $len).
  (func $key_at (param $i i32) (param $len i32) (result i32)
    (local $k i32)
    (if (i32.gt_u (i32.add (local.get $i) (i32.const 20)) (local.get $len)) (then (return (i32.const 0))))
    (if (i32.ne (call $byte_at (local.get $i)) (i32.const 65)) (then (return (i32.const 0))))
    (if (i32.ne (call $byte_at (i32.add (local.get $i) (i32.const 1))) (i32.const 75)) (then (return (i32.const 0))))
    (if (i32.ne (call $byte_at (i32.add (local.get $i) (i32.const 2))) (i32.const 73)) (then (return (i32.const 0))))
    (if (i32.ne (call $byte_at (i32.add (local.get $i) (i32.const 3))) (i32.const 65)) (then (return (i32.const 0))))
    ;; not in the middle of a longer token
    (if (i32.gt_u (local.get $i) (i32.const 0))
      (then (if (call $is_key_char (call $byte_at (i32.sub (local.get $i) (i32.const 1))))
        (then (return (i32.const 0))))))
    (if (i32.lt_u (i32.add (local.get $i) (i32.const 20)) (local.get $len))
      (then (if (call $is_key_char (call $byte_at (i32.add (local.get $i) (i32.const 20))))
        (then (return (i32.const 0))))))
    (local.set $k (i32.const 4))
    (block $bad
      (loop $chars
        (br_if $bad (i32.eqz (call $is_key_char (call $byte_at (i32.add (local.get $i) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br_if $chars (i32.lt_u (local.get $k) (i32.const 20)))
        (return (i32.const 1))))
    (i32.const 0))

  (func (export "scan") (result i32)
    (local $len i32) (local $i i32) (local $b i32) (local $line i32) (local $char i32)
    (local $count i32) (local $base i32) (local $size i32) (local $offset i64)
    (local.set $len (i32.wrap_i64 (call $input_length)))
    (call $ensure (i32.add (global.get $input) (local.get $len)))
    (block $loaded
      (loop $load
        (br_if $loaded (i32.ge_u (local.get $i) (local.get $len)))
        (i32.store8 (i32.add (global.get $input) (local.get $i))
          (call $input_load_u8 (i64.extend_i32_u (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $load)))
    (local.set $base (i32.add (global.get $input) (local.get $len)))
    (global.set $out (local.get $base))
    (call $emit_byte (i32.const 91)) ;; [
    (local.set $i (i32.const 0))
    (block $end
      (loop $scan
        (br_if $end (i32.ge_u (local.get $i) (local.get $len)))
        (if (call $key_at (local.get $i) (local.get $len))
          (then
            (if (local.get $count) (then (call $emit_byte (i32.const 44)))) ;; ,
            (call $emit (i32.const 0) (i32.const 251))
            (call $emit_number (local.get $line))
            (call $emit (i32.const 251) (i32.const 13))
            (call $emit_number (local.get $char))
            (call $emit (i32.const 264) (i32.const 16))
            (call $emit_number (local.get $line))
            (call $emit (i32.const 251) (i32.const 13))
            (call $emit_number (i32.add (local.get $char) (i32.const 20)))
            (call $emit (i32.const 280) (i32.const 14))
            (local.set $count (i32.add (local.get $count) (i32.const 1)))
            (local.set $i (i32.add (local.get $i) (i32.const 20)))
            (local.set $char (i32.add (local.get $char) (i32.const 20)))
            (br $scan)))
        (local.set $b (call $byte_at (local.get $i)))
        (if (i32.eq (local.get $b) (i32.const 10))
          (then
            (local.set $line (i32.add (local.get $line) (i32.const 1)))
            (local.set $char (i32.const 0)))
          (else
            ;; count UTF-16 units: one per leading byte, two for 4-byte sequences
            (if (i32.ne (i32.and (local.get $b) (i32.const 192)) (i32.const 128))
              (then
                (local.set $char (i32.add (local.get $char)
                  (select (i32.const 2) (i32.const 1) (i32.ge_u (local.get $b) (i32.const 240)))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (call $emit_byte (i32.const 93)) ;; ]
    (local.set $size (i32.sub (global.get $out) (local.get $base)))
    (local.set $offset (call $alloc (i64.extend_i32_u (local.get $size))))
    (local.set $i (i32.const 0))
    (block $copied
      (loop $copy
        (br_if $copied (i32.ge_u (local.get $i) (local.get $size)))
        (call $store_u8 (i64.add (local.get $offset) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $base) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (call $output_set (local.get $offset) (i64.extend_i32_u (local.get $size)))
    (i32.const 0))
)
