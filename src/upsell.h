/*
 * upsell.h
 *		Declarations shared by the fmgr layer (the .c files in src).
 */
#ifndef UPSELL_H
#define UPSELL_H

/* settings, see upsell.c */
extern int	upsell_max_basket_size;
extern int	upsell_pairs_per_product;
extern bool upsell_force_weight_change;

#endif							/* UPSELL_H */
