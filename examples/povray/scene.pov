// Tasknet demo scene: six spheres orbiting a golden torus. Frame i of Frames is declared on the command
// line (Declare=Frame=i Declare=Frames=n), so every task renders one frame of the animation.
#version 3.7;
#include "colors.inc"
#ifndef (Frame) #declare Frame = 0; #end
#ifndef (Frames) #declare Frames = 24; #end
#declare T = Frame / Frames;
global_settings { assumed_gamma 1.0 }
camera { location <0, 2, -6> look_at <0, 0.5, 0> }
light_source { <-4, 6, -5> color White }
light_source { <5, 3, -2> color rgb <0.4, 0.4, 0.5> }
background { color rgb <0.05, 0.07, 0.12> }
plane { y, -1 pigment { checker color rgb <0.9,0.9,0.9> color rgb <0.2,0.3,0.5> } finish { reflection 0.15 } }
#declare R = 1.6;
#for (I, 0, 5)
  #declare A = 2*pi*(I/6 + T);
  sphere { <R*cos(A), 0.3 + 0.6*abs(sin(2*pi*T + I)), R*sin(A)>, 0.35
    pigment { color rgb <0.5+0.5*cos(I), 0.5+0.5*sin(I*1.3), 0.6> }
    finish { phong 0.8 reflection 0.2 } }
#end
torus { 0.8, 0.15 rotate <90*T*4, 360*T, 0> translate <0, 0.6, 0> pigment { color Gold } finish { metallic reflection 0.3 } }
