/* Interface names for the encoders' unit tests (random snapshots, test_rw_encode.c and test_rw2_encode.c):
 * interfaces 0..4095 of the hostnames "r1" and a"b\c\nd named as SNMP would name them ("et-0/0/<i>",
 * "x\<i>"), a description on two in three (escaped on some). Aborts when out of memory. */
#ifndef FX_TEST_IFACE_NAMES_H
#define FX_TEST_IFACE_NAMES_H

#include "fx/iface_names.h"

struct fx_iface_names *fx_test_iface_names(void);

#endif
